"""The README's first picture: MS, PAN and the sharpened result side by side at 1:1.

One screen pixel per PAN pixel over the same window of the bundled sample's town: the
MS upsampled by nearest neighbour (so its 30 m pixels show as they are), the 15 m PAN,
and the sharpened MS. The MS and the result share one true-colour stretch.

    .venv/bin/python scripts/side_by_side.py RESULT.tif [--out PNG]

`make demo` (scripts/demo.py) writes it next to its result; scripts/screenshots.py
writes it into docs/screenshots/. Needs numpy, GDAL and matplotlib (Debian's
python3-matplotlib, seen by the venv).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample"
# PAN pixels of the sample (xoff, yoff, width, height): streets, parcels and a mall
WINDOW = (240, 126, 280, 180)
RGB = (3, 2, 1)  # red, green, blue of the sample's B2-B5
PERCENT = (2.0, 98.0)  # as the quicklooks


def _read(path: Path | str, xoff: int, yoff: int, width: int, height: int) -> np.ndarray:
    ds = gdal.Open(str(path))
    if ds is None:
        raise SystemExit(f"cannot open {path}")
    return ds.ReadAsArray(xoff, yoff, width, height).astype(np.float64).reshape(
        ds.RasterCount, height, width)


def _stretch(image: np.ndarray, limits) -> np.ndarray:
    out = [(np.clip((band - lo) / (hi - lo), 0.0, 1.0)) for band, (lo, hi) in zip(image, limits)]
    return (np.stack(out, axis=-1) * 255.0 + 0.5).astype(np.uint8)


def panels(result: str | Path, pan: Path = SAMPLE / "pan.tif", ms: Path = SAMPLE / "ms.tif",
           window=WINDOW) -> list[np.ndarray]:
    """MS (nearest-neighbour x2), PAN and result over ``window``, as H x W x 3 uint8.

    The sample keeps Landsat's grids (PAN pixel 2i+1 centred on MS pixel i, PAN pixel
    2i centred on the edge of MS pixels i-1 and i) and the result lies on the PAN grid.
    Nearest neighbour as GDAL resamples it (the MS pixel under the PAN pixel's centre,
    rounding down on an edge) gives MS pixel i to PAN pixels 2i and 2i+1: MS pixel
    (x // 2, y // 2) repeated 2 x 2 over an even-aligned window.
    """
    x, y, w, h = window
    if x % 2 or y % 2 or w % 2 or h % 2:
        raise SystemExit("the window must be on even PAN pixels")
    ms_lr = _read(ms, x // 2, y // 2, w // 2, h // 2)[[b - 1 for b in RGB]]
    ms_nn = ms_lr.repeat(2, axis=1).repeat(2, axis=2)
    sharp = _read(result, x, y, w, h)[[b - 1 for b in RGB]]
    pan_img = _read(pan, x, y, w, h)
    limits = [tuple(np.percentile(band, PERCENT)) for band in ms_lr]
    pan_limits = [tuple(np.percentile(pan_img[0], PERCENT))] * 3
    return [_stretch(ms_nn, limits), _stretch(np.repeat(pan_img, 3, axis=0), pan_limits),
            _stretch(sharp, limits)]


def side_by_side(result: str | Path, png: str | Path, method: str = "sharpened",
                 window=WINDOW) -> str:
    """Write the three panels, 1:1, labelled, to ``png``."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    images = panels(result, window=window)
    h, w = images[0].shape[:2]
    gap, top, dpi = 10, 26, 100
    width, height = 3 * w + 2 * gap, h + top
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    labels = ("MS, 30 m (nearest neighbour)", "PAN, 15 m", f"{method}, 15 m")
    for k, (image, label) in enumerate(zip(images, labels)):
        x0 = k * (w + gap)
        fig.figimage(image, xo=x0, yo=0, origin="upper")  # 1:1, no resampling
        fig.text((x0 + w / 2) / width, 1 - (top / 2) / height, label, ha="center", va="center",
                 fontsize=10)
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(png), dpi=dpi, facecolor="white")
    plt.close(fig)
    return str(png)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="the sharpened sample (on the PAN grid)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "side_by_side.png"))
    parser.add_argument("--method", default="sharpened", help="label of the third panel")
    args = parser.parse_args(argv)
    print(side_by_side(args.result, args.out, args.method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
