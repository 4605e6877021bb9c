"""A classical anchor in every deep method's output.

Project choice (named; not in either paper): a deep method's output is

    F = R(max((1 - a) * P(N) + a * C, c * Brovey))

with P the consistency projection onto the MS (``consistency``; P(N) the network's
output after it), R the same projection made multiplicative about the data's zero
(``consistency.project_ratio``; below), C the classical method ``ANCHOR_METHOD`` (MTF-GLP-HPM
until session 19, its haze-corrected form since: below), c = ``FLOOR`` (below) and ``a`` =
``default_share``'s by default (``--anchor``; 0 gives P(N) alone; below, "The share is fixed").
Fose already fuses two estimates (its one-step diffusion model and its end-to-end
network); this adds a third that no training scene shaped: the MTF-matched detail
injection whose gains come from the scene itself. On scenes our networks never saw the
two err differently (the network by learned gains that do not fit the sensor, the MRA
method by its fixed injection model), so their mean beats each: on the
leave-one-scene-out benchmark (reduced resolution, fose, outputs as stored, the mix not
yet projected; ``docs/quality.md``), Q2n with a = 0 / 0.5 / 1: IKONOS 0.901 / 0.892 /
0.872, WorldView-2 0.917 / 0.920 / 0.905, SpaceNet-6 tile 1 at 8-bit 0.839 / 0.880 /
0.878, WorldView-3 patches 0.948 / 0.948 / 0.940, WorldView-3 with the 8-band model
trained on WorldView-2 alone 0.900 / 0.938 / 0.936; SAM and ERGAS fall with it on most.
0.5 is the one constant that kept the deep methods ahead of the best classical method on
Q2n almost everywhere (0.25 lost on three inputs).

The outer P (session 16): MTF-GLP-HPM's half is not consistent with the MS, and the
network's half is bounded at zero (``bound_halves``) after its projection, so the mix
was not either; projected again, with the classical half computed on its own tile
context as before (``Anchored._classical``), it raised fose's reduced-resolution Q2n on
16 of the 18 left-out inputs, mean +0.0029 (SpaceNet-6 tile 1 8-bit 0.8925 -> 0.8988,
the 8-band WorldView-2 scene 11-bit 0.8992 -> 0.9050; IKONOS, where the check chose the
share 0, unchanged); it lowered ERGAS on 14 and SAM on 10 (raised them on 2 and 6) and
raised HQNR on 10 of the 14 full-resolution inputs. It costs SAM on the inputs too
small for the check (SpaceNet-6 tile 2 11-bit 5.04 -> 5.18, the WorldView-3 patches
8-bit 7.32 -> 7.36) and HQNR on 4 inputs (SpaceNet-6 tile 1 11-bit 0.973 -> 0.953, tile 3
0.978 -> 0.954 and 0.976 -> 0.958, WorldView-2 11-bit 0.969 -> 0.962; all still above every
classical method): fose wins 57 and ksdiff 56 of the benchmark's 68 comparisons, against
58 and 57 before (``docs/losses.md``). Session 15 had tried it with the classical half
run on the projection's wider context, much of it filled beyond a small scene's edge, so
MTF-GLP-HPM's tile-local statistics changed everywhere (tile 1 8-bit 0.8887, where the
projection done afterwards on the whole image gave 0.8993); on its own context the two
agree (0.8988; ``tests/test_anchor.py``). The anchor and the projection together cost 21 %
of fose's time and 36 % of e2e's on a 2048 x 2048 Landsat-8 scene in float32 (the
classical run, the second projection, and the network's context grown by the projection's
reach; 1 % and 12 % before the outer P; ``benchmarks/anchor_cost.py``).

R, not P, on the mix (session 17): the additive step adds each neighbourhood's
mismatch to a dark pixel as to a bright one, so a water or shadow pixel's small bands
were shifted by their bright neighbours' offsets, some through zero, and its spectrum
turned far; scaled instead, a dark pixel keeps the angle its bright neighbours'
correction gives them. On the leave-one-scene-out benchmark it lowered fose's SAM on
13 of the 18 left-out inputs (SpaceNet-6 tile 2 8-bit 5.79 -> 5.51, raised on 2: tile 1
8-bit 10.68 -> 10.82) and ERGAS on 12 (tile 1 8-bit 9.39 -> 9.14), raised Q2n on 12
(lowered on 3, by at most 0.0003) and HQNR on 8 of 14 (lowered on 6, by at most 0.004);
fose wins 62 and ksdiff 60 of the 68 comparisons (57 and 56 with P). The network's own
projection stays additive: made multiplicative too, it cost the 8-band model on the
WorldView-2 scene 0.09 Q2n at 11 bits (0.905 -> 0.813; a raw network's bands can be far
from the MS's, and bounded quotients cannot fix that). The anchor with R (and the floor below)
costs 26-27 % of fose's time and 38-40 % of e2e's on the 2048 x 2048 scene (21 % and 36 % with P;
``docs/performance.md``).

The floor (session 17, ``FLOOR``): in the darkest pixels of a scene unlike the training
scenes (water and shadow of the SpaceNet-6 tiles) the network sends visible bands to zero
where the reference has them small but positive, and a spectrum with a zeroed band turns
far (``docs/sam.md``). So every band of the mix is kept at or above c x Brovey's value,
Brovey being the upsampled MS's own spectrum scaled to the PAN, before R. R scales a
floored band with its neighbours, so it keeps the angle the floor gave (the additive P
took most of it back, and a floor after P broke the consistency that HQNR measures). c =
0.5 was the value fixed in session 16 before any measurement with R; 0.75 gained more on
SpaceNet-6 and cost Landsat-8 8-bit 0.04 Q2n. On the leave-one-scene-out benchmark the floor
lowered fose's SAM on 13 of 18 inputs (SpaceNet-6 tile 1 8-bit 10.82 -> 8.80, 11-bit 8.77 ->
8.35, both now past Brovey's and OTB's; raised on the 4-band WorldView-3 patches 8-bit, 7.33 ->
7.36) and ERGAS on 11 (tile 1 8-bit 9.14 -> 8.50); Q2n rose on 10 and fell on 4 by at most
0.0002, HQNR fell on 9 of 14 by at most 0.0045: fose wins 63 and ksdiff 60 of the 68
comparisons (62 and 60 without it). It is a pixel-wise maximum: tiling stays exact, and it
costs one Brovey run per tile.

Those numbers also say that the best share depends on the scene. So from session 17 to 20
the check (``guard``), which already runs the network and the classical half on a
Wald-degraded sample of the user's own scene, chose the share among 0, 0.25 and 0.5 with
the best Q2n there (shares above 0.5 were not offered: with 0.75, a random tiny network
mixed into MTF-GLP-HPM beat MTF-GLP-HPM on the bundled sample, so a model trained for
another sensor would have passed the check). Since session 21 it no longer chooses
(below, "The share is fixed").

The classical half runs in the data's own units, as ``--method mtf-glp-hpm`` does, so
unlike the network (``radiometry``) it is not invariant to an offset in the encoding:
on the Landsat-8 sample (reduced resolution) the default output scored Q2n 0.948 in
DN, 0.944 as an 8-bit product and 0.934 as reflectance made with an offset (x 0.275 -
2000), the network alone 0.944 in each. Taking the scene's 1st percentile off the PAN and
the MS alike before MTF-GLP-HPM lowered its Q2n on 13 of 18 left-out inputs, so the data's
own zero is kept.

The classical half is haze-corrected (session 19, ``classical.mtf_glp_hpm_haze``, Lolli et al.
2017): each band is modulated above its own darkest value, the PAN above the value the
regression of the PAN on the bands gives that haze, and a band the PAN does not see (Landsat
8/9's NIR) as MTF-GLP-HPM modulates it. MTF-GLP-HPM equalises the PAN to each band, so a dark
pixel's bands got different quotients and its spectrum turned: on SpaceNet-6 tile 3 its SAM is
11.28 against Brovey's 7.93, the haze-corrected form's 7.55. As the anchor's half, on the
leave-one-scene-out benchmark (``docs/quality.md``, ``docs/sam.md``), fose's indices improved on
47 and worsened on 21 of the 68 (IKONOS Q2n 0.9060 -> 0.9115 and 8-bit 0.8882 -> 0.9009, where the
check then chose the share 0.5; SpaceNet-6 tile 3 SAM 8.063 -> 7.679, past Brovey's; the
WorldView-2 scene 11-bit Q2n 0.9219 -> 0.9193; Landsat-8 within 0.0003 Q2n); against the
methods counted before (every other classical method, GDAL, OTB) fose wins 65 and ksdiff 63 of
the 68 comparisons (63 and 60 with MTF-GLP-HPM), and 60 and 58 with ``mtf-glp-hpm-h`` itself
counted, which takes SAM on the inputs too small for the check (SpaceNet-6 tiles 2 and 3, the
WorldView-3 patches). Without a known sensor the half stays MTF-GLP-HPM (``anchor_method``): on
the bundled Landsat-8 sample, read without its sensor, the haze-corrected NIR band took the
PAN's visible contrast, and its tile-local haze made the mix of a 160-pixel tiling differ from
the whole image's by up to 3981 DN (``tests/test_anchor.py``).

Where nothing is checked (session 20, ``default_share``): with the haze-corrected half a run
took the share ``HAZE_SHARE`` = 0.625 where the check chose none (``--no-check``, a scene too
small for the check, a check that failed); with MTF-GLP-HPM, ``ANCHOR``; since session 21 every
run does (below). On an input the check
cannot measure nothing says the network suits the scene, and the haze-corrected half keeps a dark
pixel's spectrum where the network's mix does not. On the ten left-out inputs too small to check
(the SpaceNet-6 tiles at reduced resolution, the WorldView-3 patches of both folds; 11- and
8-bit) fose and ksdiff won 43 of their 60 comparisons with every classical method, GDAL's and
OTB's at the share 0.5, 54 at 0.625 and 55 at 0.75 (SpaceNet-6 tile 3 11-bit fose SAM 7.679 /
7.410 / 7.187 against ``mtf-glp-hpm-h``'s 7.547; Q2n changed by -0.0011 to +0.0022 at 0.625,
-0.0027 to +0.0029 at 0.75); on the eight inputs large enough to check, run as ``--no-check``
runs them, fose and ksdiff at 0.625 won all 64 of their comparisons, as at 0.5 (``docs/losses.md``,
"Session 20"). 0.625 rather than 0.75: one comparison fewer, half the Q2n cost, and more of the network.
MTF-GLP-HPM's half, which turns dark pixels' spectra (above), stays at the share measured for it.

The share is fixed (session 21): on the eight left-out inputs large enough to check, the share
the check chose on its sample scored, against the truth, worse on average than the fixed 0.625 on
every index (fose and ksdiff, 76 index values: better on 39, worse on 37; mean Q2n -0.0003, SAM
+0.08, ERGAS +0.02, HQNR -0.002), and worse than the fixed 0.5 on 21 values, better on 10: the best
Q2n on the check's small degraded sample does not carry over to the scene. So the run
takes ``default_share``'s share and the check scores the deep model at it; the check still
decides between the deep model and the classical methods. On the benchmark (folds trained again)
fose's ERGAS on the 8-band WorldView-2 scene at 11 bits went 4.226 -> 3.987, past
``mtf-glp-hpm-h``'s 4.181, so fose wins 66 of the 68 comparisons (ksdiff 64); on the inputs
the check measures the indices moved better on 38 values and worse on 38, mean Q2n +0.0002, SAM
-0.080, ERGAS -0.021, HQNR +0.0013 (IKONOS 11-bit Q2n 0.9115 -> 0.9094, where the check had
chosen 0.5; ``docs/losses.md``, "Session 21").
"""
from __future__ import annotations

import numpy as np

from .consistency import Consistent, extra_halo, project_ratio
from . import sensors
from .errors import PansharpenError
from .wrapped import AfterNetwork

ANCHOR = 0.5  # the share with MTF-GLP-HPM's half, and the API default (module doc)
HAZE_SHARE = 0.625  # the run's share with the haze-corrected half (module doc, "The share is fixed")
ANCHOR_METHOD = "mtf-glp-hpm-h"  # the classical half (module doc, "The classical half is haze-corrected")
ANCHOR_FALLBACK = "mtf-glp-hpm"  # the half where the sensor, so which bands the PAN sees, is unknown
FLOOR = 0.5  # every band of the mix at least this share of Brovey's before its projection (module doc)


def anchor_method(sensor: str | None) -> str:
    """The classical half for a pair of ``sensor``: the haze-corrected method needs to know
    which bands the PAN does not see (``sensors.Sensor.pan_blind``; module doc)."""
    return ANCHOR_METHOD if sensors.lookup(sensor) else ANCHOR_FALLBACK


def default_share(sensor: str | None) -> float:
    """The share a run takes unless the user gives one: ``HAZE_SHARE`` with the haze-corrected
    half, ``ANCHOR`` with MTF-GLP-HPM (module doc, "The share is fixed")."""
    return HAZE_SHARE if anchor_method(sensor) == ANCHOR_METHOD else ANCHOR


def bound_halves(deep: np.ndarray, classical: np.ndarray, ms: np.ndarray, zero) -> tuple[np.ndarray, np.ndarray]:
    """Each half bounded as storing it alone would bound it, where the MS (``zero`` its
    encoding of 0) has no negative values: the network's to zero and above, the
    classical method's to the range from zero to the largest value of the MS or the
    network's output, band by band (``Anchored``)."""
    if (ms >= zero).all():
        deep = np.maximum(deep, zero)
        top = np.maximum(ms.max(axis=(1, 2)), deep.max(axis=(1, 2)))[:, None, None]
        classical = np.clip(classical, zero, top)
    return deep, classical


def mix(deep: np.ndarray, classical: np.ndarray, anchor: float) -> np.ndarray:
    """(1 - a) deep + a classical (module doc), float32."""
    return ((1.0 - anchor) * deep + anchor * classical).astype(np.float32, copy=False)


def floored(mixed: np.ndarray, bro: np.ndarray, ms: np.ndarray, zero) -> np.ndarray:
    """Every band at or above ``FLOOR`` x Brovey's value above the data's ``zero``, where the
    MS has no values below it (module doc)."""
    if not (ms >= zero).all():
        return mixed
    return np.maximum(mixed, zero + FLOOR * np.maximum(bro - zero, 0)).astype(np.float32, copy=False)


def brovey_values(pan: np.ndarray, lms: np.ndarray) -> np.ndarray:
    """Brovey's output (``classical.brovey``: each band x PAN / the bands' mean) with the mean
    taken in float64, where the sum of a few float32 values is exact, so that the floor does
    not depend on the order of the bands (``band_order`` reorders them for the network)."""
    pseudo = lms.mean(axis=0, dtype=np.float64)
    factor = np.where(pseudo > 0, pan / np.where(pseudo > 0, pseudo, 1.0), 0.0)
    return (lms * factor).astype(np.float32)


def projected_mix(deep: np.ndarray, classical: np.ndarray, bro: np.ndarray, anchor: float, ms: np.ndarray,
                  ratio: int, gains: np.ndarray) -> np.ndarray:
    """``Anchored``'s output on a whole image of a projected network, in the data's own units
    (``bro``: Brovey's output): the mix, floored and projected onto the MS (multiplicatively)
    where it holds a classical share (module doc; at the share 0 the engine runs the projected
    network alone)."""
    out = mix(deep, classical, anchor)
    return project_ratio(floored(out, bro, ms, 0.0), ms, ratio, gains) if anchor else out


def check_anchor(anchor: float) -> float:
    """The anchor as a float in [0, 1], or a one-line refusal."""
    try:
        value = float(anchor)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise PansharpenError(f"The classical anchor must be between 0 and 1 (got {anchor!r}): "
                              "0 keeps the network's output alone, 1 gives the classical method.")
    return value


class Anchored(AfterNetwork):
    """A per-tile deep method mixed with a classical one (module doc).

    The deep model's tiles come normalised by the scene's statistics (``radiometry``:
    x_n = (x - lo) / span); the classical methods are equivariant to a gain, not to an
    offset (the classical half multiplies by quotients of the PAN), so the offsets are taken
    back off for the classical run (``takes_scene``: ``streaming`` passes the scene's
    normalisation) and put on again after it.

    Where the MS has no negative values, each half is bounded before the mix, as
    storing it alone would bound it: the network's below-zero values (dark pixels of a
    stretched product: 16 % of a SpaceNet-6 tile's) go to zero, and MTF-GLP-HPM's
    quotients where the low-passed PAN is nearly zero (-1083 to 1370 on that 8-bit
    tile) to the range from zero to the largest value of the tile's MS or network
    output. The mix scored Q2n 0.861 there unbounded and with the classical method on the
    network's (wider) context, 0.865 bounded, 0.880 bounded and on the classical method's
    own context (``_classical``): the two halves' own scores were 0.839 and 0.878.

    When the deep method is projected onto the MS (``consistency.Consistent``), so is
    the mix (module doc), floored under Brovey's values (pixel by pixel: no context) and
    projected with the same filter and gains, multiplicatively about the tile's zero; the
    halo grows by the projection's."""

    def __init__(self, method, classical, anchor: float):
        super().__init__(method)
        self.classical, self.anchor = classical, anchor  # checked by methods.prepare
        self.projection = method if isinstance(method, Consistent) else None

    @property
    def reach(self) -> int:
        """PAN pixels of context the projection of the mix needs around the output."""
        return 0 if self.projection is None else extra_halo(self.projection.ratio)

    @property
    def halo(self) -> int:
        return max(self.method.halo, self.classical.halo) + self.reach

    @property
    def preferred_tile(self) -> int:
        return self.method.tile_for_halo(self.halo)

    def _classical(self, pan, lms, ms, out):
        """The classical method on the tile cut to its own halo (its statistics are
        tile-local: on the deep model's wider context, much of it filled beyond the
        scene's edge, they would not be those of ``--method ANCHOR_METHOD``); ``out`` (the
        network's values, a scratch array written into) keeps the rest of the context,
        which the tiler drops, and which the projection of the mix reaches into only at
        the tile's edges."""
        r = self.classical.ratio
        m = (self.halo - self.classical.halo) // r
        if m <= 0 or 2 * m >= ms.shape[1] or 2 * m >= ms.shape[2]:
            return self.classical(pan, lms, ms)
        c = m * r
        out[:, c:-c, c:-c] = self.classical(pan[c:-c, c:-c], lms[:, c:-c, c:-c], ms[:, m:-m, m:-m])
        return out

    def step(self, out, tile, scene):
        pan, lms, ms = tile
        if scene is None:  # the constant scale: a gain only
            pan_off, zero = np.float32(0), np.zeros((ms.shape[0], 1, 1), np.float32)
        else:
            pan_off = scene.normalise_pan(np.zeros(1, np.float32))[0]
            zero = scene.normalise_ms(np.zeros((ms.shape[0], 1, 1), np.float32))
        classical = self._classical(pan - pan_off, lms - zero, ms - zero, out - zero) + zero
        mixed = mix(*bound_halves(out, classical, ms, zero), self.anchor)
        if self.projection is None:
            return mixed
        mixed = floored(mixed, brovey_values(pan - pan_off, lms - zero) + zero, ms, zero)
        return project_ratio(mixed, ms, self.projection.ratio, self.projection.gains, zero)
