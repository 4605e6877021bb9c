"""Leave one scene out: how the deep models do on imagery no training run saw.

    .venv/bin/python benchmarks/generalisation.py [--families vhr4,wv8,landsat8] [--train]
        [--config cpu] [--work .build/loso] [--adapt SECONDS] [--out docs/quality.md]

For every real scene of ``../shared/data`` (``training/recipes/scenes.py``) and every
family it belongs to, the family's models are trained on the family's OTHER scenes
(``--train``: missing folds are trained with the recipe's data settings and the
training config, checkpoints in ``--work/<family>-minus-<scene>``; an interrupted run
continues) and scored on the left-out scene:

- reduced resolution (Wald's protocol on the scene: Q2n, SAM, ERGAS, SCC against its
  MS) and full resolution (D_lambda, D_s, QNR, Khan's D_lambda, HQNR; the band-mean
  error |mean(fused_b) - mean(MS_b)| / mean(MS_b), averaged over bands, in %);
- as the 11-bit product and as an 8-bit product (one linear 2-98 % stretch of all MS
  bands together, the PAN by its own, stored as Byte);
- on each method's output as the engine stores it (``as_stored``: rounded and clipped to the
  Byte or UInt16 range of the input);
- against every classical method, GDAL's pansharpening (what ``gdal:pansharp`` runs),
  Orfeo Toolbox's BundleToPerfectSensor when ``otbcli_BundleToPerfectSensor`` is
  installed (``make bench`` installs it), the deep models without the consistency
  projection ("raw"), the teacher sampled in one step ("dm50 1-step", the naive baseline
  of Fose's distillation), ``fose registered`` (its PAN moved onto the MS first:
  ``--register``, ``engine/registration.py``) and ``auto`` (the check of
  ``engine/guard.py`` on the input);
- with ``--adapt S``: ``fose`` and ``ksdiff`` adapted to the input for S seconds
  (``engine/adapt.py``; at reduced resolution they adapt on the degraded input only).

Landsat-8 has one scene: its row is the right-most strip held out by the shipped
recipe (a region, not a scene, and said so). The WorldView-3 patches come ready
degraded: reduced resolution only, averaged over ``WV3_PATCHES`` patches.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))

from diffusion_pansharpening.engine import guard, quality  # noqa: E402
from diffusion_pansharpening.engine.anchor import ANCHOR, ANCHOR_METHOD, HAZE_SHARE, default_share  # noqa: E402
from diffusion_pansharpening.engine.classical import CLASSICAL as ENGINE_CLASSICAL  # noqa: E402
from diffusion_pansharpening.engine.evaluate import FULL_BORDER, Pair, sharpen_arrays  # noqa: E402
from diffusion_pansharpening.engine.mtf import wald_degrade  # noqa: E402
from diffusion_pansharpening.training.recipes import cards, heldout, scenes  # noqa: E402
from diffusion_pansharpening.training.recipes import run as recipe  # noqa: E402

DEEP = ("fose", "ksdiff", "e2e", "dm1")
CLASSICAL = tuple(ENGINE_CLASSICAL)  # every classical method the engine offers
ADAPTED = ("fose", "ksdiff")
WV3_PATCHES = 20  # the last 20 of the 100 (scoring all 100 adds minutes, not information)
REDUCED = ("Q2n", "SAM", "ERGAS", "SCC")
FULL = ("HQNR", "D_lambda_K", "D_lambda", "D_s", "QNR", "mean_err")
SHIPPED = ROOT / "resources" / "weights"


# ---------------------------------------------------------------- folds

def fold_weights(family: str, left_out: str, work: Path, config: str, train: bool) -> dict[str, str] | None:
    """Weights of the family trained without ``left_out`` (None when not trained and
    ``train`` is off). Landsat-8: the shipped models (one scene; its strip is held out)."""
    if family == "landsat8":
        return {a: str(SHIPPED / f"landsat8-{a}.safetensors") for a in DEEP + ("dm50",)}
    folder = work / f"{family}-minus-{left_out}"
    files = {a: str(folder / f"{a}.safetensors") for a in DEEP + ("dm50",)}
    if all(Path(files[a]).exists() for a in DEEP) and (folder / "fold.json").exists():
        return files
    if not train:
        return None
    train_fold(family, left_out, folder, config)
    return files


def train_fold(family: str, left_out: str, folder: Path, config_name: str) -> None:
    """Both pipelines on the family's scenes less ``left_out`` (the recipe's settings)."""
    from diffusion_pansharpening.training import datasets

    rec = recipe.load_recipe(family)
    config, data = recipe.training_config(rec, config_name)
    used = [n for n in data["scenes"] if n != left_out]
    parts = [p for n in used for p in scenes.load(n, family)]
    pairs = [p for p in parts if isinstance(p, datasets.ScenePair)]
    if pairs:
        main = recipe._crop_whole(pairs[0], data)
        train_set, val_set, _ = recipe.split(main, data, tuple(p for p in parts if p is not pairs[0]))
    else:  # only ready patches are left (wv8 without WorldView-2)
        patches = datasets.concat([datasets.apply_scene_normalisation(p, kind=data["normalisation"])
                                   for p in parts])
        train_set, val_set = datasets.index_split(patches, data["val_fraction"])
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{family} without {left_out}: {len(train_set)} training patches from {', '.join(used)}",
          file=sys.stderr, flush=True)
    seconds = recipe.train(config, train_set, val_set, folder, progress=True)
    (folder / "fold.json").write_text(json.dumps({"family": family, "left_out": left_out, "scenes": used,
                                                  "config": config_name, "patches": len(train_set),
                                                  "training_seconds": seconds}, indent=2))


SCENE_NOTES = {
    "wv3": ("The WorldView-3 patches come degraded by their provider with the MS about half a PAN "
            "pixel off the engine's phase; their MS is degraded again from their ground truth by the "
            "engine's own protocol (training/datasets.rewald_patches), for training and scoring alike."),
}


def fold_note(family: str, left_out: str, work: Path) -> str:
    """What the report says about the models of a fold (fold.json's note, if any) and
    about the scene (``SCENE_NOTES``)."""
    return " ".join(n for n in (_models_note(family, left_out, work), SCENE_NOTES.get(left_out, "")) if n)


def _models_note(family: str, left_out: str, work: Path) -> str:
    if family == "landsat8":
        return "One Landsat-8 scene: scored on the strip its shipped models never saw in training."
    path = work / f"{family}-minus-{left_out}" / "fold.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    if info.get("note"):
        return f"Models: {info['note']}."
    return f"Models: trained on {', '.join(info.get('scenes', []))} ({info.get('patches', '?')} patches)." if info else ""


# ---------------------------------------------------------------- scenes to score

def test_items(family: str, name: str) -> list[tuple[str, object]]:
    """(label, item) for the left-out scene: a full-resolution ``Pair`` or, for the
    WorldView-3 set, a list of (pan, ms, gt) reduced-resolution patches in DN."""
    from diffusion_pansharpening.training import datasets

    out = []
    for part in scenes.load(name, family):
        if isinstance(part, datasets.ScenePair):
            pair = Pair(part.pan.astype(np.float32), part.ms.astype(np.float32), part.ratio, part.scale,
                        part.sensor)
            if family == "landsat8":
                cut = json.loads((SHIPPED / "landsat8-quality.json").read_text())["heldout_columns"][0]
                pair = Pair(pair.pan[:, cut * pair.ratio:], pair.ms[:, :, cut:], pair.ratio, pair.scale, pair.sensor)
            out.append((part.source.split("/")[-1], pair))
        else:
            s = part.scale
            items = [(part.pan[i, 0].numpy() * s, part.ms[i].numpy() * s, part.gt[i].numpy() * s)
                     for i in range(len(part) - WV3_PATCHES, len(part))]
            out.append((f"{WV3_PATCHES} patches", (items, part.ratio, s, part.sensor)))
    return out


def left_out_inputs(work: Path, families=("vhr4", "wv8", "landsat8"), bits=("11", "8")):
    """(family, scene, part, bits, input, fold weights, top of the stored range) for every
    left-out input whose fold is trained; the input is a Pair or ready-degraded patches."""
    for family in families:
        for name in scenes.family_scenes(family):
            weights = fold_weights(family, name, work, "cpu", False)
            if weights is None:
                continue
            for label, item in test_items(family, name):
                for b in bits:
                    yield (family, name, label, b, item if b == "11" else as_8bit(item), weights,
                           255.0 if b == "8" else 65535.0)


def stretch_8bit(pan: np.ndarray, ms: np.ndarray, *extra: np.ndarray):
    """One linear 2-98 % stretch of all MS bands (and ``extra``, e.g. the reference),
    the PAN by its own; rounded to Byte values (float32 arrays)."""
    lo, hi = np.percentile(ms, [2, 98])
    p_lo, p_hi = np.percentile(pan, [2, 98])
    to8 = lambda a, a_lo, a_hi: np.clip(np.round((a - a_lo) / (a_hi - a_lo) * 255), 0, 255).astype(np.float32)
    return (to8(pan, p_lo, p_hi), to8(ms, lo, hi), *(to8(e, lo, hi) for e in extra))


def as_8bit(item):
    if isinstance(item, Pair):
        pan, ms = stretch_8bit(item.pan, item.ms)
        return Pair(pan, ms, item.ratio, 255.0, item.sensor)
    items, r, _, sensor = item
    return ([stretch_8bit(p, m, g) for p, m, g in items], r, 255.0, sensor)


# ---------------------------------------------------------------- methods

def runners(weights: dict[str, str], adapt_seconds: float | None, work: Path) -> dict:
    """name -> f(input Pair) -> fused (B, H, W) DN."""
    out = {}
    for m in DEEP:  # as ``sharpen --method M`` runs them; dm1 alone, for Fose's stage ratios (``markdown``)
        out[m] = ((lambda p: sharpen_arrays(p, "dm1", weights=weights["dm1"], device="cpu", anchor=0.0))
                  if m == "dm1" else (lambda p, m=m: as_sharpen(p, m, weights[m])))
    for m in ("fose", "ksdiff"):  # the share fixed at the default, unchecked
        out[f"{m} {ANCHOR:g}"] = lambda p, m=m: sharpen_arrays(p, m, weights=weights[m], device="cpu")
    for m in CLASSICAL:
        out[m] = lambda p, m=m: sharpen_arrays(p, m)
    out["gdal:pansharp"] = heldout.gdal_pansharpen
    if shutil.which("otbcli_BundleToPerfectSensor"):
        out["otb:bundle"] = otb_bundle
    for m in ("fose", "e2e", "ksdiff"):
        out[f"{m} net"] = lambda p, m=m: sharpen_arrays(p, m, weights=weights[m], device="cpu", anchor=0.0)
        out[f"{m} raw"] = lambda p, m=m: sharpen_arrays(p, m, weights=weights[m], device="cpu",
                                                        consistent=False, anchor=0.0)
    if Path(weights["dm50"]).exists():
        naive = one_step_teacher(weights["dm50"], work)
        out["dm50 1-step"] = lambda p: sharpen_arrays(p, "dm50", weights=naive, device="cpu", anchor=0.0)
    out["fose registered"] = lambda p: as_sharpen(p, "fose", weights["fose"], register=True)
    out["auto"] = lambda p: auto(p, weights)
    if adapt_seconds:
        for m in ADAPTED:
            out[f"{m} adapted"] = lambda p, m=m: adapted(p, m, weights[m], adapt_seconds, work)
    return out


def as_stored(fused, bits: str) -> np.ndarray:
    """A method's output as the engine stores it in the input's data type (Byte for the
    8-bit product, ``bits`` "8"; UInt16 otherwise): rounded and clipped to its range.
    The float values below 0 that a method makes in the dark pixels of a stretched
    product (up to 16 % of a SpaceNet-6 tile's for fose) are not in any file a user
    gets, and alone would double its SAM there."""
    return np.clip(np.round(np.asarray(fused, np.float32)), 0.0, 255.0 if bits == "8" else 65535.0)


def stored(methods: dict, bits: str) -> dict:
    """The runners with their outputs ``as_stored``."""
    return {name: (lambda p, run=run: as_stored(run(p), bits)) for name, run in methods.items()}


def one_step_teacher(dm50: str, work: Path) -> str:
    """The teacher's weights set to sample in ONE DDIM step: the naive one-step baseline
    that Fose's distilled student (dm1) must beat (the paper's stage-2 claim)."""
    import hashlib

    from safetensors.torch import load_file, save_file

    from diffusion_pansharpening.engine.families import read_metadata

    meta = read_metadata(dm50)
    config = json.loads(meta["config"])
    config["sample_steps"] = 1
    meta["config"] = json.dumps(config)
    target = work / "teacher-1step" / f"{hashlib.sha256(dm50.encode()).hexdigest()[:16]}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(load_file(dm50), str(target), metadata=meta)
    return str(target)


def checked_share(pair: Pair, method: str, weights: str, register: bool = False):
    """(share, verdict): the anchor share ``sharpen --method M`` runs (``anchor.default_share``)
    and its check's verdict on the input (the content-rich 512-pixel sample, degraded once
    more)."""
    share = default_share(pair.sensor)
    return share, guard.judge(_content_sample(pair), method, weights, device="cpu", anchor=share,
                              register=register)


def as_sharpen(pair: Pair, method: str, weights: str, register: bool = False) -> np.ndarray:
    """What ``sharpen --method M`` runs: the deep model at the share ``checked_share`` gives;
    the share goes to ``as_sharpen.shares``."""
    share, verdict = checked_share(pair, method, weights, register)
    as_sharpen.shares.append(f"{method}{' registered' if register else ''} {share:g}"
                             f"{' (unchecked)' if verdict.undecided else ''}")
    return sharpen_arrays(pair, method, weights=weights, device="cpu", anchor=share, register=register)


as_sharpen.shares = []


def auto(pair: Pair, weights: dict[str, str]) -> np.ndarray:
    """What ``--method auto`` runs: the shipped-family fose at ``anchor.default_share``,
    unless its check says a classical method wins."""
    share, verdict = checked_share(pair, "fose", weights["fose"])
    label = f" {share:g} (unchecked)" if verdict.undecided else (f" {share:g}" if verdict.method == "fose" else "")
    auto.choices.append(verdict.method + label)
    return sharpen_arrays(pair, verdict.method, weights=verdict.weights, device="cpu", anchor=share)


auto.choices = []


def _content_sample(pair: Pair, size: int = guard.SAMPLE) -> Pair:
    """The central ``size`` x ``size`` PAN window (whole MS pixels) the benchmark's check sees."""
    r = pair.ratio
    unit = r * r
    h, w = (min(size, n // unit * unit) for n in pair.pan.shape)
    y, x = ((n - s) // 2 // r * r for n, s in zip(pair.pan.shape, (h, w)))
    return Pair(pair.pan[y:y + h, x:x + w], pair.ms[:, y // r:(y + h) // r, x // r:(x + w) // r], r,
                pair.scale, pair.sensor)


def adapted(pair: Pair, method: str, base: str, seconds: float, work: Path) -> np.ndarray:
    from diffusion_pansharpening.engine import adapt

    target = work / "adapted" / f"{method}-{time.time_ns()}.safetensors"
    result = adapt.adapt(None, base, seconds=seconds, device="cpu", sample=pair, out=str(target))
    adapted.log.append(f"{method}: {result.summary()}")
    return sharpen_arrays(pair, method, weights=result.path or base, device="cpu")


adapted.log = []


def otb_bundle(pair: Pair) -> np.ndarray:
    """Orfeo Toolbox's BundleToPerfectSensor with its defaults on GeoTIFFs of the pair
    (the MS placed on the engine's aligned grid, as ``heldout.gdal_pansharpen`` does)."""
    from osgeo import gdal

    r, (bands, h, w) = pair.ratio, pair.ms.shape
    with tempfile.TemporaryDirectory() as tmp:
        drv = gdal.GetDriverByName("GTiff")
        pan = drv.Create(f"{tmp}/pan.tif", pair.pan.shape[1], pair.pan.shape[0], 1, gdal.GDT_Float32)
        pan.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
        pan.GetRasterBand(1).WriteArray(pair.pan)
        ms = drv.Create(f"{tmp}/ms.tif", w, h, bands, gdal.GDT_Float32)
        ms.SetGeoTransform((0.5, float(r), 0.0, -0.5, 0.0, -float(r)))
        for b in range(bands):
            ms.GetRasterBand(b + 1).WriteArray(pair.ms[b])
        pan = ms = None
        subprocess.run(["otbcli_BundleToPerfectSensor", "-inp", f"{tmp}/pan.tif", "-inxs", f"{tmp}/ms.tif",
                        "-out", f"{tmp}/out.tif", "float"], check=True, capture_output=True)
        return gdal.Open(f"{tmp}/out.tif").ReadAsArray().astype(np.float32).reshape(bands, *pair.pan.shape)


# ---------------------------------------------------------------- scoring

def full_and_reduced(pair: Pair) -> tuple[Pair, Pair]:
    """The pair cut to whole blocks of ratio x ratio MS pixels (so its Wald-degraded copy
    has whole pixels), and that copy: the full- and reduced-resolution inputs as scored."""
    r = pair.ratio
    unit = r * r
    h, w = (n // unit * unit for n in pair.pan.shape)
    pair = Pair(pair.pan[:h, :w], pair.ms[:, :h // r, :w // r], r, pair.scale, pair.sensor)
    pan_lr, ms_lr = wald_degrade(pair.pan, pair.ms, r, pair.sensor)
    return pair, Pair(pan_lr.astype(np.float32), ms_lr.astype(np.float32), r, pair.scale, pair.sensor)


def score_pair(pair: Pair, methods: dict) -> dict:
    """{"reduced": {method: indices}, "full": {...}} for a full-resolution pair."""
    pair, reduced = full_and_reduced(pair)
    r = pair.ratio
    out = {"reduced": {}, "full": {}}
    for name, run in methods.items():
        fused = np.asarray(run(reduced), np.float32)
        out["reduced"][name] = quality.reduced_indices(fused, pair.ms, r)
        fused = np.asarray(run(pair), np.float32)
        full = quality.full_indices(fused, pair.pan, pair.ms, r, pair.sensor, border=FULL_BORDER)
        full["mean_err"] = band_mean_error(fused, pair.ms)
        out["full"][name] = full
    return out


def score_patches(item, methods: dict) -> dict:
    items, r, scale, sensor = item
    out = {"reduced": {}}
    for name, run in methods.items():
        scores = [quality.reduced_indices(np.asarray(run(Pair(p, m, r, scale, sensor)), np.float32), g, r)
                  for p, m, g in items]
        out["reduced"][name] = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    return out


def band_mean_error(fused: np.ndarray, ms: np.ndarray) -> float:
    """Mean over bands of |mean(fused_b) - mean(MS_b)| / mean(MS_b), in %."""
    f, m = fused.mean(axis=(1, 2)), ms.mean(axis=(1, 2))
    return float(np.mean(np.abs(f - m) / np.maximum(np.abs(m), 1e-6)) * 100)


# ---------------------------------------------------------------- report

def best_classical(rows: dict, key: str, higher: bool) -> tuple[str, float]:
    peers = {m: v[key] for m, v in rows.items() if m in CLASSICAL or ":" in m}
    name = (max if higher else min)(peers, key=peers.get)
    return name, peers[name]


def report_order(res: dict) -> tuple:
    """Families as in the recipes, scenes as in ``scenes.SCENES``, 11-bit before 8-bit."""
    families = ("vhr4", "wv8", "landsat8")
    return (families.index(res["family"]) if res["family"] in families else len(families),
            list(scenes.SCENES).index(res["scene"]) if res["scene"] in scenes.SCENES else 99,
            res["part"], res["bits"] != "11-bit")


def counted(items: list[str]) -> str:
    """"a, b, b, b" as "a, b x 3" (the patches repeat one choice)."""
    runs = []
    for item in items:
        if runs and runs[-1][0] == item:
            runs[-1][1] += 1
        else:
            runs.append([item, 1])
    return ", ".join(item if n == 1 else f"{item} x {n}" for item, n in runs)


def markdown(results: list[dict]) -> str:
    lines = ["# Quality of the shipped models: leave one scene out", "",
             "Generated by `benchmarks/generalisation.py` (see its docstring for the protocol). Every "
             "deep model here was trained WITHOUT the scene it is scored on (Landsat-8: one scene, "
             "its held-out strip). Reduced resolution: Wald's protocol on the scene; full resolution: "
             f"the scene as it is, border {FULL_BORDER} px. Every output is scored as the engine stores it "
             "(rounded, clipped to the Byte or UInt16 range of the input). `mean_err`: band-mean error in %. "
             "`fose`, `ksdiff`, `e2e`: what `pansharpen sharpen --method M` writes: the network's output "
             f"after the consistency projection mixed with `{ANCHOR_METHOD}` (`engine/anchor.py`; the mix projected "
             "again since session 16; `mtf-glp-hpm` before session 19) at the share `anchor.default_share` gives "
             f"({HAZE_SHARE:g} since session 21; from session 17 to 20 the check chose 0, 0.25 or 0.5 by Q2n on the input's "
             "content-rich sample, degraded once more, and took 0.625 only where the input is too small for the check), "
             f"listed under each scene; `fose {ANCHOR:g}`, `ksdiff {ANCHOR:g}`: the share fixed at "
             f"{ANCHOR:g} (the default before session 17); `net`: the network's "
             "alone after the projection; `raw`: the network's alone without it. `dm1` and `dm50 1-step` "
             "(the teacher sampled in one DDIM step, the naive baseline the distilled `dm1` must beat) are "
             "networks alone after the projection, for Fose's stage ratios. `fose registered`: fose on the PAN "
             "moved onto the MS by the offset measured on the input (`--register`, `engine/registration.py`). "
             "`auto`: what `--method auto` runs after its "
             "check. Best of each column in bold. Scene adaptation (`--adapt`) on these inputs, with the "
             "same folds: `docs/adaptation.md` (`benchmarks/adaptation.py`). Where and why the deep methods lose SAM "
             "to Brovey on the SpaceNet-6 tiles: `docs/sam.md` (`benchmarks/dark_sam.py`). Every comparison "
             "the deep models lose, and why: `docs/losses.md`.", ""]
    for res in sorted(results, key=report_order):
        lines.append(f"## {res['family']}: left out {res['scene']} ({res['part']}), {res['bits']}")
        lines.append("")
        if res.get("note"):
            lines += [res["note"], ""]
        for protocol, keys in (("reduced", REDUCED), ("full", FULL)):
            rows = res["scores"].get(protocol)
            if not rows:
                continue
            higher = {"Q2n": True, "SCC": True, "HQNR": True, "QNR": True}
            best = {k: (max if higher.get(k, False) else min)(r[k] for r in rows.values()) for k in keys}
            lines.append(f"{protocol} resolution")
            lines.append("")
            lines.append("| method | " + " | ".join(keys) + " |")
            lines.append("|---|" + "---:|" * len(keys))
            for name, r in rows.items():
                cells = [(f"**{r[k]:.4f}**" if r[k] == best[k] else f"{r[k]:.4f}") for k in keys]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
        if res.get("auto"):
            lines += [f"auto chose: {counted(res['auto'])}", ""]
        if res.get("shares"):
            lines += [f"anchor shares (reduced, full): {counted(res['shares'])}", ""]
        if res.get("adapt_log"):
            lines += ["Adaptation: " + "; ".join(res["adapt_log"]), ""]
    deep = ("fose", "ksdiff", f"fose {ANCHOR:g}", f"ksdiff {ANCHOR:g}", "fose registered", "fose net", "ksdiff net")
    lines += ["## Deep models against the best classical method and GDAL/OTB", "",
              f"`{ANCHOR:g}`: the anchor share fixed at {ANCHOR:g}; `net`: the network alone (no classical "
              "anchor); `registered`: on the PAN moved onto the MS. Wins: " + ", ".join(deep) + ".", "",
              "| family | scene | bits | index | " + " | ".join(deep) + " | best other | wins |",
              "|---|---|---|---|" + "---:|" * len(deep) + "---|---|"]
    tally = dict.fromkeys(deep, 0)
    total = 0
    for res in sorted(results, key=report_order):
        for protocol, keys in (("reduced", ("Q2n", "SAM", "ERGAS")), ("full", ("HQNR",))):
            rows = res["scores"].get(protocol)
            if not rows or not any(m in CLASSICAL or ":" in m for m in rows):
                continue  # e.g. --rows without a classical method into a new --out: nothing to compare
            for k in keys:
                higher = k in ("Q2n", "HQNR")
                other, value = best_classical(rows, k, higher)
                wins = {m: m in rows and (rows[m][k] > value if higher else rows[m][k] < value) for m in deep}
                total += 1
                for m in deep:
                    tally[m] += wins[m]
                values = " | ".join(f"{rows[m][k]:.4f}" if m in rows else "" for m in deep)
                lines.append(f"| {res['family']} | {res['scene']} {res['part']} | {res['bits']} | {k} | "
                             f"{values} | {other} {value:.4f} | "
                             f"{' '.join('yes' if wins[m] else 'no' for m in deep)} |")
    lines += ["", "Wins over the best other method: " +
              "; ".join(f"{m} {tally[m]} of {total}" for m in deep) + "."]
    return "\n".join(lines + stage_ratios(results)) + "\n"


def stage_ratios(results: list[dict]) -> list[str]:
    """Fose's stage ratios on the left-out inputs (issue 17): does the distilled student
    ``dm1`` beat the teacher sampled in one naive step, and does Fose beat its parts (all
    networks alone, after the projection)? Q2n at reduced resolution, HQNR at full."""
    parts = cards.STAGE_PARTS
    lines = ["", "## Fose's stage ratios on the left-out inputs", "",
             "The networks alone after the consistency projection (no classical anchor): `dm50 1-step` is "
             "the teacher sampled in one DDIM step, the naive baseline the distilled student `dm1` must "
             "beat; `fose net` must beat its parts, `dm1` and `e2e net`.", "",
             "| family | scene | bits | index | " + " | ".join(parts) + " | dm1 > 1-step | fose > parts |",
             "|---|---|---|---|" + "---:|" * len(parts) + "---|---|"]
    student = ensemble = total = 0
    for res, k, v in cards.stage_ratio_values(sorted(results, key=report_order)):
        s_win, e_win = v["dm1"] > v["dm50 1-step"], v["fose net"] > max(v["dm1"], v["e2e net"])
        student, ensemble, total = student + s_win, ensemble + e_win, total + 1
        lines.append(f"| {res['family']} | {res['scene']} {res['part']} | {res['bits']} | {k} | "
                     + " | ".join(f"{v[m]:.4f}" for m in parts)
                     + f" | {'yes' if s_win else 'no'} | {'yes' if e_win else 'no'} |")
    return lines + ["", f"dm1 beats the one-step teacher in {student} of {total}; fose beats both its parts "
                        f"in {ensemble} of {total}."]


def main(argv=None) -> int:
    from osgeo import gdal

    gdal.UseExceptions()  # a script of its own: GDAL errors raise (the engine scopes its own)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="vhr4,wv8,landsat8", help="comma-separated; '' renders the saved report")
    p.add_argument("--scenes", default=None, help="only these left-out scenes (comma-separated)")
    p.add_argument("--train", action="store_true", help="train the missing folds first (hours of CPU)")
    p.add_argument("--config", default="cpu")
    p.add_argument("--work", default=str(ROOT / ".build" / "loso"))
    p.add_argument("--adapt", type=float, default=None, metavar="SECONDS")
    p.add_argument("--bits", default="11,8", help="11 (the product as it is), 8 (stretched to Byte)")
    p.add_argument("--out", default=str(ROOT / "docs" / "quality.md"))
    p.add_argument("--json", default=None, help="default: --out with .json")
    p.add_argument("--rows", default=None,
                   help="only these methods (comma-separated), their scores merged into the saved rows")
    p.add_argument("--fresh", action="store_true",
                   help="start a new report (default: update the rows of the scenes scored now, keep the others)")
    args = p.parse_args(argv)
    work = Path(args.work)
    json_path = Path(args.json or Path(args.out).with_suffix(".json"))
    results = [] if args.fresh or not json_path.exists() else json.loads(json_path.read_text())
    for r in results:  # rows saved before their notes were recorded (a row keeps its own)
        r["note"] = r.get("note") or fold_note(r["family"], r["scene"], work)
    for family in args.families.split(","):
        names = scenes.family_scenes(family)
        for name in names:
            if args.scenes and name not in args.scenes.split(","):
                continue
            weights = fold_weights(family, name, work, args.config, args.train)
            if weights is None:
                print(f"{family} without {name}: not trained (run with --train)", file=sys.stderr)
                continue
            for label, item in test_items(family, name):
                for bits in args.bits.split(","):
                    data = item if bits == "11" else as_8bit(item)
                    auto.choices, adapted.log, as_sharpen.shares = [], [], []
                    methods = stored(runners(weights, args.adapt, work), bits)
                    if args.rows:
                        methods = {k: v for k, v in methods.items() if k in args.rows.split(",")}
                    start = time.perf_counter()
                    scores = score_pair(data, methods) if isinstance(data, Pair) else score_patches(data, methods)
                    key = (family, name, label, "11-bit" if bits == "11" else "8-bit")
                    if json_path.exists() and not args.fresh:  # keep rows another run wrote meanwhile
                        results = json.loads(json_path.read_text())
                    old = [r for r in results if (r["family"], r["scene"], r["part"], r["bits"]) == key]
                    results = [r for r in results if (r["family"], r["scene"], r["part"], r["bits"]) != key]
                    row = {"family": family, "scene": name, "part": label,
                           "bits": "11-bit" if bits == "11" else "8-bit", "scores": scores,
                           "auto": list(auto.choices), "shares": list(as_sharpen.shares),
                           "adapt_log": list(adapted.log), "note": fold_note(family, name, work)}
                    if args.rows and old:  # the other methods' scores and notes as saved
                        merged = old[0]
                        for protocol, rows in scores.items():
                            merged["scores"].setdefault(protocol, {}).update(rows)
                        for field in ("auto", "shares", "adapt_log"):
                            merged[field] = row[field] or merged.get(field, [])
                        row = merged
                    results.append(row)
                    print(f"{family} / {name} / {label} / {bits}-bit: {time.perf_counter() - start:.0f} s",
                          file=sys.stderr, flush=True)
                    Path(args.out).write_text(markdown(results))
                    json_path.write_text(json.dumps(sorted(results, key=report_order), indent=1))
    Path(args.out).write_text(markdown(results))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
