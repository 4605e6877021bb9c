"""Why a method runs for a pair: the engine's choice, its model family, weights file
and held-out quality, in lines the dialog and dock show next to the method."""
from __future__ import annotations

import os
from typing import Optional

from .i18n import tr

AUTO = "auto"
# output megapixels (PAN grid) per second of each adaptable model on a 2-core CPU, from
# docs/benchmarks.md (the 8000 x 8000 Landsat-8 scene): enough for an estimate in a label
CPU_MP_PER_S = {"fose": 0.48, "ksdiff": 1.25, "e2e": 1.83, "dm1": 0.87}


def explain(pair, method: str, weights: Optional[str], methods: dict) -> list:
    """Plain-text lines about ``method`` (``auto`` or an engine name) for ``pair`` (an
    engine ``PairInfo``, or None before a pair is chosen); ``methods`` maps names to the
    engine's ``MethodInfo``."""
    from ...engine.errors import PansharpenError
    from ...engine.families import FAMILIES, choose_model, quality_line, read_metadata

    info = methods.get(method)
    if info is not None and not info.available and not weights:
        if "PyTorch" in info.why_unavailable:
            return [info.why_unavailable, tr("Simplest: the \"Install PyTorch\" button below installs "
                                             "it for this plugin alone.")]
        return [info.why_unavailable]
    if pair is None:
        return [info.summary if info is not None else tr("The model that fits the inputs.")]
    choice = choose_model(pair, method, weights or None)
    lines = []
    if method == AUTO:
        lines.append(tr("For these inputs: {name}").format(name=choice.method))
    chosen = methods.get(choice.method)
    if chosen is not None:
        lines.append(chosen.summary)
    if choice.weights or choice.family or method == AUTO:
        lines.append(choice.reason)
    if choice.family in FAMILIES and not choice.weights:
        lines.append(tr("Model family: {title}.").format(title=FAMILIES[choice.family].title))
    if choice.weights:
        try:
            quality = quality_line(read_metadata(choice.weights).get("quality"))
        except (OSError, PansharpenError):
            quality = ""
        lines.append(tr("Quality of {name}: {quality}").format(
            name=os.path.basename(choice.weights), quality=quality or tr("not recorded in the file")))
    return lines


def adapted_method(pair, method: str, weights: Optional[str], methods: dict) -> Optional[str]:
    """The deep model that adaptation would fine-tune for ``method`` (``auto`` resolved
    for ``pair``), or None when the run has none to adapt (classical, unavailable, dm50)."""
    from ...engine.families import choose_model
    from ...engine.registry import adaptable

    name = choose_model(pair, method, weights or None).method if pair is not None else method
    info = methods.get(name)
    usable = info is not None and (info.available or bool(weights))
    return name if usable and name in adaptable() else None


def adapt_estimate(pair, name: str, budget: float) -> str:
    """The extra time of adapting ``name`` for ``budget`` seconds: the budget plus the
    model's run on the pair (its CPU speed; a GPU is faster)."""
    if pair is None:
        return tr("Extra time: about {budget} of fine-tuning, then the model's run.").format(
            budget=duration(budget))
    run = pair.width * pair.height / 1e6 / CPU_MP_PER_S.get(name, min(CPU_MP_PER_S.values()))
    return tr("Extra time: about {total} ({budget} of fine-tuning {name} on this scene, then its "
              "run, about {run} on a CPU).").format(
        total=duration(budget + run), budget=duration(budget), name=name, run=duration(run))


def duration(seconds: float) -> str:
    """45 -> "45 s", 125 -> "2 min 5 s"."""
    seconds = max(1, int(round(seconds)))
    if seconds < 60:
        return tr("{s} s").format(s=seconds)
    minutes, rest = divmod(seconds, 60)
    return (tr("{m} min {s} s").format(m=minutes, s=rest) if rest
            else tr("{m} min").format(m=minutes))
