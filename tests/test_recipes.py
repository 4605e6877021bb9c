"""The shipped-model recipes: a tiny end-to-end run, the cards, GDAL's pansharpening."""
import json
import re
import time

import numpy as np
import pytest
import torch

from diffusion_pansharpening.engine.evaluate import Pair
from diffusion_pansharpening.training.recipes import heldout
from diffusion_pansharpening.training.recipes.run import main as recipe_main

torch.set_num_threads(1)
METHODS = ["fose", "ksdiff", "e2e", "dm1", "dm50", "brovey", "gihs", "gsa", "mtf-glp-hpm",
           "lms", "gdal:pansharp"]


@pytest.fixture(scope="module")
def vhr4_tiny(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("recipe") / "tmp"
    start = time.perf_counter()
    assert recipe_main(["vhr4", "--config", "tiny", "--out", str(out), "--threads", "1", "--quiet"]) == 0
    return out, time.perf_counter() - start


def table_rows(markdown: str, first_column: str) -> dict[str, list[float]]:
    """Rows of the Markdown table whose header starts with ``| method | first_column``."""
    lines = markdown.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(f"| method | {first_column} "))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows


def test_tiny_vhr4_recipe_writes_weights_cards_and_quality_page(vhr4_tiny):
    out, seconds = vhr4_tiny
    assert seconds < 90  # "well under a minute" on an idle machine; this one is shared
    for arch in ("fose", "e2e", "dm1", "dm50", "ksdiff"):
        assert (out / f"vhr4-{arch}.safetensors").is_file()
    results = json.loads((out / "vhr4-quality.json").read_text())
    for arch in ("fose", "ksdiff"):
        card = (out / f"vhr4-{arch}.md").read_text()
        assert "non-profit" in card and "Masi" in card and "Scarpa" in card
        reduced, full = table_rows(card, "SAM"), table_rows(card, "D_lambda")
        assert sorted(reduced) == sorted(METHODS) and sorted(full) == sorted(METHODS)
        # the card shows the measured numbers
        assert reduced["gsa"][2] == pytest.approx(results["reduced"]["gsa"]["Q2n"], abs=1e-4)
        assert "parameters" in card and "latency" in card.lower()
        assert "Where it does not beat" in card
    doc = (out / "docs" / "heldout.md").read_text()
    assert "## vhr4" in doc and "quality-vhr4.png" in doc
    assert (out / "docs" / "quality-vhr4.png").stat().st_size > 10_000


def test_exported_weights_carry_family_radiometry_and_quality(vhr4_tiny, monkeypatch):
    from types import SimpleNamespace

    from diffusion_pansharpening.engine.families import ENV_WEIGHTS, choose_model, shipped_models
    from diffusion_pansharpening.engine.methods import prepare

    out, _ = vhr4_tiny
    monkeypatch.setenv(ENV_WEIGHTS, str(out))
    choice = choose_model(SimpleNamespace(bands=4, ratio=4, sensor="QB"))
    assert choice.method == "fose" and choice.weights == str(out / "vhr4-fose.safetensors")
    model = prepare("fose", ratio=4, bands=4, device="cpu")
    meta = model.metadata
    assert model.normalisation == "scene" and meta["normalisation"] == "scene-joint-p1-p99"
    assert meta["bands"] == ["blue", "green", "red", "NIR"] and meta["family"] == "vhr4"
    assert "Q2n" in meta["quality"]["summary"] and "SAM" in meta["quality"]["reduced"]
    listed = {(m.family, m.architecture): m for m in shipped_models()}
    assert listed[("vhr4", "ksdiff")].bands == 4 and "Q2n" in listed[("vhr4", "ksdiff")].quality


def test_gdal_pansharpening_is_equal_weight_brovey(ikonos):
    """Weighted Brovey keeps the band mean equal to the PAN (weights 1/B), whatever
    GDAL's cubic LMS; and its spectral angle is that of the LMS (per-pixel gain)."""
    pan, ms = ikonos
    pair = Pair(pan[:128, :128].astype(np.float32), ms[:, :32, :32].astype(np.float32), 4, 2047.0, "IKONOS")
    fused = heldout.gdal_pansharpen(pair)
    assert fused.shape == (4, 128, 128)
    np.testing.assert_allclose(fused.mean(axis=0), pair.pan, rtol=1e-4)
    # not the PAN copied: the bands keep their own ratios
    ratios = fused[2] / fused[1]
    assert ratios.std() > 0.01


def test_the_vhr4_recipe_trains_on_every_4_band_scene(vhr4_tiny):
    """The tiny vhr4 run drew patches from the IKONOS training region and from the
    other 4-band scenes, and its card and weights name them all."""
    out, _ = vhr4_tiny
    results = json.loads((out / "vhr4-quality.json").read_text())
    assert results["scenes"] == ["ikonos", "spacenet6", "wv2", "wv3"] and results["left_out"] is None
    for words in ("IKONOS", "SpaceNet-6", "WorldView-2", "WorldView-3"):
        assert words in results["imagery"]
    card = (out / "vhr4-fose.md").read_text()
    assert "CC BY-SA 4.0" in card and "leave one scene out" in card


def test_leave_out_drops_the_scene_and_names_unknown_ones(tmp_path):
    from diffusion_pansharpening.engine.errors import PansharpenError
    from diffusion_pansharpening.training.recipes import run, scenes

    recipe = run.load_recipe("vhr4")
    data = run.data_settings(recipe, "tiny")
    main, others, used = run.scene_parts(recipe, data, tmp_path, "ikonos")
    assert used == ["spacenet6", "wv2", "wv3"]
    assert main.source == "spacenet6 tile 1" and len(others) == 4  # two more tiles, WV-2, WV-3
    assert all(part.ms.shape[-3] == 4 for part in [main, *others])  # bands (patch sets: N first)
    with pytest.raises(PansharpenError, match="not among the recipe's scenes"):
        run.scene_parts(recipe, data, tmp_path, "pleiades")
    assert scenes.family_scenes("wv8") == ["wv2", "wv3"]


def test_a_recipes_stage_settings_go_on_top_of_the_training_config():
    from diffusion_pansharpening.training.config import load_config, stage_settings
    from diffusion_pansharpening.training.recipes import run

    for family, mix in (("vhr4", 0.8), ("wv8", 0.8), ("landsat8", 0.0)):
        config, data = run.training_config(run.load_recipe(family), "cpu")
        assert config["data"]["patch"] == data["patch"]
        assert [stage_settings(config, p, n).pan_mix for p, n in (("fose", 3), ("ksdiff", 1))] == [mix, mix]
        # every other stage setting is the config file's
        plain = load_config("cpu")
        assert stage_settings(config, "fose", 3).steps == stage_settings(plain, "fose", 3).steps


def test_generalisation_report_helpers():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import generalisation as g

    rng = np.random.default_rng(0)
    pan = rng.uniform(100, 2000, (64, 64)).astype(np.float32)
    ms = rng.uniform(100, 2000, (4, 16, 16)).astype(np.float32)
    pan8, ms8, ref8 = g.stretch_8bit(pan, ms, ms)
    assert ms8.max() == 255 and ms8.min() == 0 and np.array_equal(ms8, ref8)
    assert np.all(ms8 == np.round(ms8))
    assert g.band_mean_error(ms * 1.1, ms) == pytest.approx(10.0, rel=1e-4)
    # scored as stored: rounded and clipped to the product's data type
    store = g.stored({"m": lambda p: np.array([-3.2, 0.4, 254.6, 300.0])}, "8")["m"]
    assert store(None).tolist() == [0.0, 0.0, 255.0, 255.0]
    scores = {m: {"Q2n": q, "SAM": 2.0, "ERGAS": 2.0, "SCC": 0.9} for m, q in
              (("fose", 0.95), ("ksdiff", 0.90), ("fose 0.5", 0.925), ("ksdiff 0.5", 0.89),
               ("fose registered", 0.94), ("fose net", 0.93), ("ksdiff net", 0.91), ("gsa", 0.92),
               ("gdal:pansharp", 0.80))}
    doc = g.markdown([{"family": "vhr4", "scene": "wv2", "part": "x", "bits": "8-bit",
                       "scores": {"reduced": scores}, "shares": ["fose 0.25", "fose 0.5", "fose 0.5"]}])
    assert ("| vhr4 | wv2 x | 8-bit | Q2n | 0.9500 | 0.9000 | 0.9250 | 0.8900 | 0.9400 | 0.9300 | 0.9100 | "
            "gsa 0.9200 | yes no yes no yes yes no |" in doc)
    assert ("fose 1 of 3; ksdiff 0 of 3; fose 0.5 1 of 3; ksdiff 0.5 0 of 3; fose registered 1 of 3; "
            "fose net 1 of 3; ksdiff net 0 of 3." in doc)
    assert "anchor shares (reduced, full): fose 0.25, fose 0.5 x 2" in doc
    # rows scored without any classical method (--rows into a new --out): listed, not compared
    alone = g.markdown([{"family": "vhr4", "scene": "wv2", "part": "x", "bits": "8-bit",
                         "scores": {"reduced": {"fose": scores["fose"]}}}])
    assert "| fose | **0.9500** |" in alone and "Wins over the best other method: fose 0 of 0" in alone


def test_adaptation_wins_table_takes_the_adapted_rows_against_the_benchmarks_best_other(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import adaptation

    head = "| scene | bits | protocol | model | budget s | steps | Q2n | SAM | ERGAS | HQNR |\n|---|\n"
    table = tmp_path / "a.md"
    table.write_text(head + "\n".join([
        "| t (x) | 8-bit | reduced | fose base, share checked | 0 | 0 | 0.9000 | 5.0000 | 4.0000 | - |",
        "| t (x) | 8-bit | reduced | fose adapted, full, checked | 30 | 9 | 0.9300 | 6.0000 | 3.0000 | - |",
        "| t (x) | 8-bit | full | fose base, share checked | 0 | 0 | - | - | - | 0.8000 |"]) + "\n")
    saved = tmp_path / "quality.json"
    other = {"Q2n": 0.92, "SAM": 5.5, "ERGAS": 3.5, "HQNR": 0.85}
    saved.write_text(json.dumps([{"family": "vhr4", "scene": "t", "part": "x", "bits": "8-bit", "scores": {
        "reduced": {"otb:bundle": other, "fose": {"Q2n": 0.99, "SAM": 1.0, "ERGAS": 1.0}},
        "full": {"gsa": other}}}]))
    lines = adaptation.wins("vhr4", [str(table)], saved).splitlines()[2:]
    assert [ln.split(" | ")[-2:] for ln in lines] == [
        ["otb:bundle 0.9200", "yes |"], ["otb:bundle 5.5000", "no |"], ["otb:bundle 3.5000", "yes |"],
        ["gsa 0.8500", "no |"]]
    assert "0.8000 (not adapted)" in lines[-1]


def test_dark_sam_detail_gains_are_the_least_squares_scale_of_the_detail():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import dark_sam

    detail = np.random.default_rng(0).normal(size=(2, 40, 40))
    target = detail * np.array([0.4, 0.8])[:, None, None]
    np.testing.assert_allclose(dark_sam.fitted_gain(detail, target).ravel(), [0.4, 0.8], rtol=1e-9)
    common = dark_sam.fitted_gain(detail, target, per_band=False).ravel()
    assert common[0] == common[1] and 0.4 < common[0] < 0.8
    local = dark_sam.fitted_gain(detail, target, window=9)
    assert local.shape == detail.shape and np.allclose(local[:, 5:-5, 5:-5], [[[0.4]], [[0.8]]], atol=1e-6)
