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
    doc = (out / "docs" / "quality.md").read_text()
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
