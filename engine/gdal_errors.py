"""GDAL's Python exceptions, switched on for the engine's own calls only.

Why: ``gdal.UseExceptions()`` is one flag for the whole process. Called at import (as
the engine once did) it changed how every other GDAL user in QGIS sees errors (None
return values become RuntimeErrors). GDAL 3.6 has no ``gdal.ExceptionMgr``, so this is
that: save ``gdal.GetUseExceptions()``, set the state the engine needs, restore it on
the way out, nested calls included. Use as ``with gdal_exceptions():`` or as the
decorator ``@gdal_exceptions()`` on each function that calls GDAL.

The flag is process-wide, and engine calls overlap on threads (the plugin sharpens in a
QgsTask while its panel inspects pairs; streaming reads on a reader thread): scopes are
counted, the first one saves the caller's setting and the last one to end restores it,
so one thread's exit never switches exceptions off under another's running call. A GDAL
call elsewhere during an engine call sees exceptions on, as it always did before.
"""
from __future__ import annotations

import contextlib
import threading

from osgeo import gdal

_lock = threading.Lock()
_depth = 0  # engine scopes running now, all threads together
_saved = False  # the setting before the first of them


def _set(enabled: bool) -> None:
    if bool(gdal.GetUseExceptions()) != enabled:
        gdal.UseExceptions() if enabled else gdal.DontUseExceptions()


@contextlib.contextmanager
def gdal_exceptions(enabled: bool = True):
    """GDAL errors raise RuntimeError inside (``enabled``), or come back as return values
    (False, briefly: the writer's quiet close); the caller's setting afterwards,
    whatever happened inside."""
    global _depth, _saved
    if not enabled:
        with _lock:
            previous = bool(gdal.GetUseExceptions())
            _set(False)
        try:
            yield
        finally:
            with _lock:
                _set(previous)
        return
    with _lock:
        if _depth == 0:
            _saved = bool(gdal.GetUseExceptions())
        _depth += 1
        _set(True)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(_saved)
