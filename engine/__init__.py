"""The pansharpening engine: GDAL I/O, tiled streaming, methods, quality indices.

Pure Python + numpy + GDAL (+ torch for the deep models). Never imports QGIS, so
the command line, the training code and the QGIS plugin share it unchanged.
"""
