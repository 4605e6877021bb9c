"""Regenerate a family's shipped models from the shared data, with one command.

    python training/recipes/run.py FAMILY [--config cpu|tiny] [--out DIR] [--work DIR]
                                          [--docs DIR] [--threads N] [--docs-only]

FAMILY is ``landsat8``, ``vhr4`` or ``wv8`` (``training/recipes/FAMILY.toml``). Steps:
read the family's scene, split it into a training region and a held-out strip (the
training split of ``training.datasets``), train Fose (4 stages: dm50, dm1, e2e, fose)
and KSDiff (2 stages) with the training config (``cpu``: the shipped sizes, about an
hour per pipeline on a 2-core CPU; ``tiny``: seconds, for smoke tests), score every
method and GDAL's pansharpening on the held-out strip, time a 512 x 512 tile, then
write into ``--out`` (default ``resources/weights``)::

    <family>-{fose,e2e,dm1,dm50,ksdiff}.safetensors   quality in the metadata
    <family>-fose.md  <family>-ksdiff.md             model cards
    <family>-quality.json                            everything measured

and into ``--docs`` (default ``docs``, or ``OUT/docs`` when ``--out`` is given)
``quality-<family>.png`` and ``heldout.md`` (all families found in ``--out``).
Training runs live in ``--work`` (default ``.build/recipes/<family>-<config>``, or
``OUT/runs/<family>``); an interrupted run continues from its checkpoints.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from diffusion_pansharpening.engine import registry
from diffusion_pansharpening.engine.errors import PansharpenError
from diffusion_pansharpening.training.recipes import cards, heldout

ROOT = Path(__file__).resolve().parents[2]
RECIPES = Path(__file__).resolve().parent


def load_recipe(family: str) -> dict:
    path = RECIPES / f"{family}.toml"
    if not path.exists():
        known = sorted(p.stem for p in RECIPES.glob("*.toml"))
        raise PansharpenError(f"no recipe {family!r}; known families: {', '.join(known)}")
    with open(path, "rb") as f:
        return tomllib.load(f)


def data_path(p: str) -> Path:
    """Relative paths are tried against the current directory, then the project root."""
    path = Path(p)
    if not path.is_absolute() and not path.exists() and (ROOT / path).exists():
        path = ROOT / path
    if not path.exists():
        raise PansharpenError(f"recipe data {p} is missing (looked in . and {ROOT}); "
                              "see ../shared/data/README.md")
    return path


def data_settings(recipe: dict, config_name: str) -> dict:
    data = dict(recipe["data"])
    if config_name == "tiny":
        data.update(recipe.get("tiny", {}))
    return data


def training_config(recipe: dict, config_name: str) -> tuple[dict, dict]:
    """(training config, data settings): the config file with the recipe's data and its
    ``[stage]`` settings (a family's own choices, e.g. vhr4's ``pan_mix``) on top."""
    from diffusion_pansharpening.training.config import load_config

    data = data_settings(recipe, config_name)
    config = load_config(config_name)
    config["data"] = {k: v for k, v in data.items() if k != "extra"}
    config["stage"] = {**config.get("stage", {}), **recipe.get("stage", {})}
    return config, data


def read_scene(recipe: dict, data: dict, work: Path):
    """The family's scene as a ``training.datasets.ScenePair`` in DN."""
    from diffusion_pansharpening.training import datasets

    if "scene" in data:
        scene = datasets.read_mat_pair(data_path(data["scene"]))
    else:
        from osgeo import gdal

        work.mkdir(parents=True, exist_ok=True)
        vrt_path = work / "ms.vrt"
        vrt = gdal.BuildVRT(str(vrt_path), [str(data_path(p)) for p in data["ms"]], separate=True)
        for b, name in enumerate(family_of(recipe).band_names):
            vrt.GetRasterBand(b + 1).SetDescription(name)
        vrt = None
        scene = datasets.read_geotiff_pair(data_path(data["pan"]), vrt_path,
                                           sensor=recipe["family"]["sensor"])
    return _crop_whole(scene, data)


def family_of(recipe: dict):
    from diffusion_pansharpening.engine.families import FAMILIES

    return FAMILIES[recipe["family"]["name"]]


def split(scene, data: dict, others: tuple = ()):
    """(training PatchSet, validation PatchSet, first held-out MS column).

    ``scene`` gives the training region and the held-out strip; ``others`` are more
    scenes (``scenes.load`` parts: whole pairs, degraded by Wald's protocol each on its
    own, or ready patch sets) that go to training whole."""
    from diffusion_pansharpening.training import datasets

    r, width = scene.ratio, scene.ms.shape[2]
    patch, norm = data["patch"], data.get("normalisation", "scale")
    cut = datasets.split_columns(width, r, data["val_fraction"], patch)
    train = datasets.wald_patches(scene, patch, data["stride"], (0, cut), norm)
    val = datasets.wald_patches(scene, patch, patch, (cut, width), norm)
    extras = []
    for p in data.get("extra", []):
        path = data_path(p)
        extra = (datasets.read_pancollection(path) if path.suffix in (".h5", ".hdf5")
                 else datasets.read_mat_patches(path))
        if data.get("extra_limit"):
            extra = extra.subset(slice(0, int(data["extra_limit"])))
        extras.append(extra)
    for part in others:
        if isinstance(part, datasets.ScenePair):
            part = _crop_whole(part, data)
            if min(part.ms.shape[1:]) >= patch:
                extras.append(datasets.wald_patches(part, patch, data["stride"], None, norm))
        else:
            extras.append(part.subset(slice(0, int(data["extra_limit"]))) if data.get("extra_limit") else part)
    if norm != "scale":
        extras = [p if p.norm is not None else datasets.apply_scene_normalisation(p, kind=norm)
                  for p in extras]
    if extras:
        train = datasets.concat([train] + extras)
    return train, val, cut


def scene_parts(recipe: dict, data: dict, work: Path, leave_out: str | None):
    """(the scene holding the held-out strip, the other training parts, the scenes
    used): from ``[data] scenes`` (names in ``scenes.SCENES``) less ``leave_out``, or
    the recipe's single ``scene`` / ``pan`` + ``ms``."""
    from diffusion_pansharpening.training import datasets
    from diffusion_pansharpening.training.recipes import scenes

    names = list(data.get("scenes", []))
    if not names:
        if leave_out:
            raise PansharpenError(f"the {recipe['family']['name']} recipe names no scenes to leave out")
        return read_scene(recipe, data, work), [], []
    if leave_out and leave_out not in names:
        raise PansharpenError(f"--leave-out {leave_out}: not among the recipe's scenes ({', '.join(names)})")
    used = [n for n in names if n != leave_out]
    parts = [p for n in used for p in scenes.load(n, recipe["family"]["name"])]
    first = next(i for i, p in enumerate(parts) if isinstance(p, datasets.ScenePair))
    main = _crop_whole(parts.pop(first), data)
    return main, parts, used


def _crop_whole(scene, data: dict):
    """Whole multiples of ratio^2 MS pixels (as Wald's degradation of each region
    needs), at most ``crop`` a side."""
    r = scene.ratio
    crop = data.get("crop") or max(scene.ms.shape[1:])
    h, w = (min(crop, n) // (r * r) * r * r for n in scene.ms.shape[1:])
    scene.ms, scene.pan = scene.ms[:, :h, :w], scene.pan[:h * r, :w * r]
    return scene


def train(config: dict, train_set, val_set, work: Path, progress: bool) -> dict:
    """Every stage of every registered pipeline; returns training seconds per pipeline
    (stages already finished in ``work`` keep the time recorded when they ran)."""
    from diffusion_pansharpening.training.run import Run

    run = Run(config, train_set, val_set, work, resume="auto", progress=progress)
    times_path = work / "stage_seconds.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    pipelines = registry.pipelines()
    for pipeline, spec in pipelines.items():
        for n, stage in spec.stage_table().items():
            start = time.perf_counter()
            result = stage(run)
            if result.losses:  # trained now (not just reloaded from a finished checkpoint)
                resumed = result.step > len(result.losses)
                earlier = times.get(f"{pipeline}{n}", 0.0) if resumed else 0.0
                times[f"{pipeline}{n}"] = earlier + time.perf_counter() - start
            times_path.write_text(json.dumps(times, indent=2))
    return {p: sum(v for k, v in times.items() if k.startswith(p)) for p in pipelines}


def export(work: Path, out: Path, family, recipe: dict, results: dict) -> dict[str, str]:
    """Copy each stage output to ``out/<family>-<arch>.safetensors`` with the family's
    band names, imagery, licence and held-out quality in the metadata."""
    from safetensors.torch import save_file

    from diffusion_pansharpening.engine.models.weights import read_weights

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for arch in registry.exported():
        tensors, meta = read_weights(str(work / f"{arch}.safetensors"))
        meta.update({
            "family": family.name, "sensor": recipe["family"]["sensor"],
            "bands": json.dumps(list(family.band_names)), "training_data": results["imagery"],
            "licence": cards.licence_text(recipe["family"]["licence"]),
            "quality": json.dumps(quality_metadata(results, arch)),
        })
        path = out / f"{family.name}-{arch}.safetensors"
        save_file(tensors, str(path), metadata=meta)
        files[arch] = str(path)
    return files


def quality_metadata(results: dict, arch: str) -> dict:
    return {"summary": cards.summary_line(results, arch), "protocol": "held-out region",
            "reduced": results["reduced"].get(arch, {}), "full": results["full"].get(arch, {})}


def imagery_text(recipe: dict, used: list[str]) -> str:
    """What the models were trained on: the recipe's line, or the scenes used."""
    if not used:
        return recipe["family"]["imagery"]
    from diffusion_pansharpening.training.recipes.scenes import SCENES

    return "; ".join(SCENES[n].title for n in used)


def machine() -> str:
    import torch

    return (f"{platform.machine()} {platform.processor() or ''}".strip()
            + f", {os.cpu_count()} logical CPUs, torch {torch.__version__}")


def recipe_run(family_name: str, config_name: str, out: Path, work: Path, docs: Path,
               threads: int | None = None, progress: bool = True, leave_out: str | None = None) -> dict:
    """The whole recipe (module doc); returns the results dictionary."""
    import torch

    from diffusion_pansharpening.engine.evaluate import Pair
    from diffusion_pansharpening.engine.sensors import canonical

    torch.set_num_threads(threads or os.cpu_count() or 1)
    recipe = load_recipe(family_name)
    family = family_of(recipe)
    config, data = training_config(recipe, config_name)
    scene, others, used = scene_parts(recipe, data, work, leave_out)
    train_set, val_set, cut = split(scene, data, tuple(others))
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    say(f"{family.name}: {len(train_set)} training / {len(val_set)} validation patches; "
        f"held-out MS columns [{cut}, {scene.ms.shape[2]})")
    seconds = train(config, train_set, val_set, work, progress)

    r = scene.ratio
    sensor = canonical(scene.sensor)
    held = Pair(scene.pan[:, cut * r:].astype(np.float32), scene.ms[:, :, cut:].astype(np.float32),
                r, scene.scale, sensor)
    weights = {arch: str(work / f"{arch}.safetensors") for arch in registry.exported()}
    say("scoring every method on the held-out region")
    reports, fused = heldout.score(held, weights)
    results = {
        "family": family.name, "title": family.title, "bands": list(family.band_names),
        "ratio": r, "imagery": imagery_text(recipe, used), "licence": recipe["family"]["licence"],
        "config": config_name, "machine": machine(), "patch": data["patch"],
        "patches": len(train_set), "val_fraction": data["val_fraction"],
        "heldout_columns": [cut, int(scene.ms.shape[2])], "normalisation": data.get("normalisation"),
        "scenes": used, "left_out": leave_out,
        "training_seconds": seconds, "notes": recipe.get("notes", {}),
        "reduced": heldout.rows(reports["reduced"], heldout.REDUCED_KEYS),
        "full": heldout.rows(reports["full"], heldout.FULL_KEYS),
        "seconds": {k: v["seconds"] for k, v in reports["full"]["methods"].items()},
    }
    tile = int(data.get("latency_tile", 512))
    results["latency"] = {arch: heldout.latency(weights[arch], tile) for arch in registry.exported()}
    export(work, out, family, recipe, results)
    (out / f"{family.name}-quality.json").write_text(json.dumps(results, indent=2))
    for arch in registry.with_cards():
        (out / f"{family.name}-{arch}.md").write_text(cards.card(results, arch))
    some = next(iter(fused.values()))
    fused["pan"] = held.pan[:some.shape[1], :some.shape[2]]
    cards.picture(fused, tuple(recipe["family"]["rgb"]), docs / f"quality-{family.name}.png")
    cards.quality_doc(out, docs)
    say(f"wrote {out}/{family.name}-*.safetensors, cards and {docs}/heldout.md")
    return results


def rescore(out: Path, family_name: str, work: Path) -> None:
    """Score the shipped models of ``out`` on their recipe's held-out strip again with the
    engine as it is now (e.g. after an inference change), and write the results into the
    saved results, the weights' quality metadata, the cards and heldout.md."""
    from safetensors.torch import load_file, save_file

    from diffusion_pansharpening.engine.evaluate import Pair
    from diffusion_pansharpening.engine.sensors import canonical
    from diffusion_pansharpening.engine.families import read_metadata

    saved = out / f"{family_name}-quality.json"
    results = json.loads(saved.read_text())
    recipe = load_recipe(family_name)
    scene, _, _ = scene_parts(recipe, data_settings(recipe, results["config"]), work, None)
    cut, r = results["heldout_columns"][0], scene.ratio
    held = Pair(scene.pan[:, cut * r:].astype(np.float32), scene.ms[:, :, cut:].astype(np.float32),
                r, scene.scale, canonical(scene.sensor))
    weights = {arch: str(out / f"{family_name}-{arch}.safetensors") for arch in registry.exported()}
    reports, _ = heldout.score(held, weights)
    results["reduced"] = heldout.rows(reports["reduced"], heldout.REDUCED_KEYS)
    results["full"] = heldout.rows(reports["full"], heldout.FULL_KEYS)
    results["seconds"] = {k: v["seconds"] for k, v in reports["full"]["methods"].items()}
    saved.write_text(json.dumps(results, indent=2))
    for arch, path in weights.items():
        meta = read_metadata(path)
        meta["quality"] = json.dumps(quality_metadata(results, arch))
        save_file(load_file(path), path, metadata=meta)


def rewrite_cards(out: Path, family_name: str) -> None:
    """The family's cards again from its saved results, with the recipe's current [notes]."""
    saved = out / f"{family_name}-quality.json"
    if not saved.exists():
        return
    results = json.loads(saved.read_text())
    results["notes"] = load_recipe(family_name).get("notes", {})
    saved.write_text(json.dumps(results, indent=2))
    for arch in registry.with_cards():
        (out / f"{family_name}-{arch}.md").write_text(cards.card(results, arch))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("family", help="landsat8, vhr4 or wv8")
    p.add_argument("--config", default="cpu", help="training config: cpu (shipped) or tiny (smoke)")
    p.add_argument("--out", default=None, help="weights and cards folder (default resources/weights)")
    p.add_argument("--work", default=None, help="training runs folder")
    p.add_argument("--docs", default=None, help="folder of heldout.md and its pictures")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument("--docs-only", action="store_true",
                   help="no training: rewrite the family's cards (with the recipe's [notes]) and heldout.md from --out")
    p.add_argument("--leave-out", default=None, metavar="SCENE",
                   help="train without this scene of the recipe's [data] scenes (leave-one-scene-out)")
    p.add_argument("--rescore", action="store_true",
                   help="no training: score the models in --out on the held-out strip again, then rewrite the cards")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from osgeo import gdal

    gdal.UseExceptions()  # a script of its own: GDAL errors raise (the engine scopes its own)
    out = Path(args.out) if args.out else ROOT / "resources" / "weights"
    docs = Path(args.docs) if args.docs else (out / "docs" if args.out else ROOT / "docs")
    work = Path(args.work) if args.work else (
        out / "runs" / args.family if args.out else ROOT / ".build" / "recipes" / f"{args.family}-{args.config}")
    try:
        if args.docs_only or args.rescore:
            if args.rescore:
                rescore(out, args.family, work)
            rewrite_cards(out, args.family)
            print(cards.quality_doc(out, docs))
            return 0
        recipe_run(args.family, args.config, out, work, docs, args.threads, not args.quiet,
                   args.leave_out)
    except PansharpenError as exc:
        print(f"run.py: {exc}", file=sys.stderr)
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())
