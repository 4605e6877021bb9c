"""The MS bands in the order a deep model was trained on.

A model's metadata names its bands ("blue", "green", "red", "NIR"; the 8-band family
"coastal" ... "NIR2"). A product whose band descriptions name its bands in another
order, an R, G, B, NIR GeoTIFF say, has them given to the network in the model's order,
and the network's output put back in the file's (``Reordered``); the consistency
projection, the classical anchor and the output stay in the file's order. Measured on
the left-out vhr4 inputs given as R, G, B, NIR with nothing to say so: fose's Q2n fell
from 0.8944 to 0.8796 on IKONOS and from 0.9187 to 0.9137 on WorldView-2 (11-bit,
reduced resolution; docs/quality.md's protocol), which this recovers wherever the bands
are named.

Only descriptions count, not colour interpretations: GDAL tags the bands of a 4-band
Byte GeoTIFF red, green, blue and alpha whatever they hold. Bands without names, or
names that do not say which band is which, keep the file's order.
"""
from __future__ import annotations

import re

import numpy as np

SYNONYMS = {"nearinfrared": "nir", "nearir": "nir", "r": "red", "g": "green", "b": "blue", "n": "nir"}


def role(name: str) -> str:
    """A band name as compared: lower case, only letters and digits, synonyms folded."""
    plain = re.sub(r"[^a-z0-9]", "", name.lower())
    return SYNONYMS.get(plain, plain)


def model_order(file_names, model_names) -> tuple[int, ...] | None:
    """For each model band, the index of the file band that holds it; None when the
    order is the same or the names do not tell (module doc). One band left unnamed on
    each side (an R, G, B product whose fourth band has no name) is paired."""
    if not file_names or not model_names or len(file_names) != len(model_names):
        return None
    have = [role(n) for n in file_names]
    if len(set(have)) != len(have):
        return None
    order = [have.index(role(m)) if role(m) in have else None for m in model_names]
    missing = [i for i, o in enumerate(order) if o is None]
    if len(missing) == 1:
        order[missing[0]] = next(i for i in range(len(have)) if i not in order)
    elif missing:
        return None
    return None if order == list(range(len(order))) else tuple(order)


class Reordered:
    """A deep model fed the file's bands in its own order (``order``: ``model_order``),
    its output given back in the file's; every other attribute is the model's."""

    def __init__(self, model, order):
        self.model = model
        self.order = list(order)
        self.back = list(np.argsort(self.order))

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, pan, lms, ms):
        return self.run_batch([(pan, lms, ms)])[0]

    def run_batch(self, tiles):
        outs = self.model.run_batch([(pan, lms[self.order], ms[self.order]) for pan, lms, ms in tiles])
        return [out[self.back] for out in outs]
