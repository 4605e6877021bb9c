"""Screenshots for the README: the Pansharpen dialog, and the map before/after a run.

Run under Xvfb (real X rendering, fonts and styles as on a desktop):

    xvfb-run -a .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

It loads the bundled sample into a fresh project, opens the plugin's dialog on it,
runs the algorithm the way the dialog does (a QgsProcessingAlgRunnerTask), and
renders the MS next to the result over the same small window so the sharpening shows,
and writes the README's first picture (MS, PAN and result at 1:1, scripts/side_by_side.py).
Nothing is written outside ``--out`` except QGIS's temporary folder.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".build" / "plugins"))
sys.path.insert(0, str(ROOT / "scripts"))

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication, QSize, Qt  # noqa: E402
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter  # noqa: E402

WINDOW_PIXELS = 160  # PAN pixels a side of the before/after crop
TILE = 420  # rendered size of each half, screen pixels


def wait_for(job, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not job.done and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    if not job.done:
        raise SystemExit("the run did not finish")


def render(layer: QgsRasterLayer, extent: QgsRectangle, size: int) -> QImage:
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def side_by_side(left: QImage, right: QImage, labels) -> QImage:
    gap, band = 8, 28
    image = QImage(left.width() + right.width() + gap, left.height() + band, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.drawImage(0, band, left)
    painter.drawImage(left.width() + gap, band, right)
    font = QFont()
    font.setPointSize(11)
    painter.setFont(font)
    for x, text in ((0, labels[0]), (left.width() + gap, labels[1])):
        painter.drawText(x, 0, left.width(), band, Qt.AlignCenter, text)
    painter.end()
    return image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # a throw-away profile: the dialog remembers its settings, never in a real profile
    app = QgsApplication([], True, tempfile.mkdtemp(prefix="dp_profile_"))
    app.initQgis()
    from diffusion_pansharpening import classFactory
    from diffusion_pansharpening.plugin.ui.dialog import PansharpenDialog

    plugin = classFactory(None)  # the provider only: the dialog below stands alone
    plugin.initProcessing()
    project = QgsProject.instance()
    ms = QgsRasterLayer(str(ROOT / "resources" / "sample" / "ms.tif"), "ms")
    pan = QgsRasterLayer(str(ROOT / "resources" / "sample" / "pan.tif"), "pan")
    project.addMapLayers([ms, pan])

    dialog = PansharpenDialog(None)
    dialog.show()
    for _ in range(20):
        QCoreApplication.processEvents()
    dialog.grab().save(str(out / "dialog.png"))

    controls = dialog.controls
    controls.output_widget.setFilePath(os.path.join(tempfile.mkdtemp(), "sharpened.tif"))
    job = controls.run()
    if job is None:
        raise SystemExit("the dialog refused to run: " + controls.pair_label.text())
    wait_for(job)
    if job.layer is None:
        raise SystemExit("the run failed")

    from diffusion_pansharpening.plugin.core.style import apply_true_colour

    apply_true_colour(ms)
    # the sample's town: streets, parcels and a mall (PAN pixel 380, 216 of 654 x 306)
    full = job.layer.extent()
    cx, cy = full.xMinimum() + 0.58 * full.width(), full.yMaximum() - 0.70 * full.height()
    half = WINDOW_PIXELS * pan.rasterUnitsPerPixelX() / 2
    window = QgsRectangle(cx - half, cy - half, cx + half, cy + half)
    image = side_by_side(render(ms, window, TILE), render(job.layer, window, TILE),
                         ("MS, 30 m", f"{job.layer.name()}, 15 m"))
    image.save(str(out / "map_result.png"))
    from side_by_side import side_by_side as first_picture  # the README's, at 1:1

    method = job.layer.name()[len(ms.name()):].strip() or "sharpened"
    first_picture(job.layer.source(), out / "side_by_side.png", method)

    dialog.close()
    plugin.unload()
    print(f"wrote {out / 'dialog.png'}, {out / 'map_result.png'} and {out / 'side_by_side.png'}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
