"""``pansharpen batch``: many PAN/MS pairs on a Dask cluster, one task per scene.

Scenes come from a folder (``SCENE_pan.tif`` + ``SCENE_ms.tif``, or Landsat's
``*_B8.TIF`` + ``*_B2..B5.TIF``, the four MS bands stacked through an in-memory VRT)
or from a CSV manifest ``pan,ms,out[,method]``. Each task runs ``pipeline.sharpen``
unchanged (tiled, bounded memory) on a worker into a hidden folder beside the output
(one per machine), records what made it (inputs with size and mtime, method, model, options) in the
GeoTIFF's metadata, and renames it into place: a rerun skips outputs whose record
matches, and a killed worker leaves no file under a final name. Models are loaded
once per worker process. Runs on a ``LocalCluster`` sized from the CPUs, GPUs and
memory, or on a running scheduler (``--scheduler``); workers need the same paths
(a shared file system).

Dask is imported inside the functions that use it: the engine works without it.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import sensors
from .errors import PansharpenError

if TYPE_CHECKING:
    from .pipeline import SharpenRequest

RECORD_KEY = "DIFFUSION_PANSHARPENING_BATCH"
HIDDEN_PREFIX = ".pansharpen-batch-"  # + host name: scratch folder beside the outputs
LANDSAT_MS_BANDS = sensors.lookup("LANDSAT8").band_ids  # B2-B5 (engine/sensors.py)
LANDSAT_BAND_NAMES = sensors.lookup("LANDSAT8").band_names
THREADS_ENV = "DIFFUSION_PANSHARPENING_THREADS"  # models.THREADS_ENV (that module needs torch)
MEMORY_PER_WORKER = 3 * 1024 ** 3  # a deep model on the CPU with its tiles in flight, generously
DEFAULT_SAMPLE = 512
DEFAULT_RETRIES = 2
SUMMARY_FIELDS = ["scene", "status", "method", "reason", "seconds", "megapixels", "mp_per_s",
                  "D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR", "output", "worker", "attempts", "error"]
# options of a SharpenRequest that say nothing about the result
NOT_RECORDED = ("pan", "ms", "output", "overwrite", "threads", "method", "weights")


@dataclass(frozen=True)
class Scene:
    """One pair to sharpen. ``ms`` is one raster or Landsat band files to stack;
    ``error`` is a discovery problem, reported as the scene's failure."""

    name: str
    pan: str
    ms: tuple[str, ...]
    output: str
    method: str | None = None  # the manifest's, over the batch's
    error: str | None = None


# ---------------------------------------------------------------- discovery

_PAN = re.compile(r"^(?P<scene>.+)_pan\.tiff?$", re.IGNORECASE)
_MS = re.compile(r"^(?P<scene>.+)_ms\.tiff?$", re.IGNORECASE)
_B8 = re.compile(r"^(?P<scene>.+)_B8\.tiff?$", re.IGNORECASE)


def discover(source: str, out_dir: str) -> list[Scene]:
    """The scenes of a folder or of a ``.csv`` manifest, outputs in ``out_dir``."""
    if os.path.isfile(source) and source.lower().endswith(".csv"):
        scenes = read_manifest(source, out_dir)
    elif os.path.isdir(source):
        scenes = scan_folder(source, out_dir)
    else:
        raise PansharpenError(
            f"{source} is neither a folder of pairs nor a .csv manifest: give a folder holding "
            "SCENE_pan.tif + SCENE_ms.tif (or Landsat *_B8.TIF + *_B2..B5.TIF), or a CSV pan,ms,out[,method]."
        )
    if not scenes:
        raise PansharpenError(
            f"No scenes found in {source}: name pairs SCENE_pan.tif + SCENE_ms.tif, or keep Landsat's "
            "*_B8.TIF + *_B2.TIF..*_B5.TIF names, or list them in a CSV manifest."
        )
    seen: dict[str, str] = {}
    for scene in scenes:
        key = os.path.abspath(scene.output)
        if key in seen:
            raise PansharpenError(
                f"Scenes {seen[key]} and {scene.name} would both write {scene.output}: give them distinct outputs."
            )
        seen[key] = scene.name
    return scenes


def scan_folder(folder: str, out_dir: str) -> list[Scene]:
    """Pairs in ``folder`` and its subfolders (``out_dir`` excluded), sorted by name."""
    out_abs = os.path.abspath(out_dir)
    files: dict[str, dict[str, str]] = {}  # directory -> lower-case name -> real name
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if os.path.abspath(os.path.join(root, d)) != out_abs)
        files[root] = {n.lower(): n for n in names}
    scenes = []
    for root, names in files.items():
        pans = {m["scene"]: names[n] for n in names if (m := _PAN.match(n))}
        mss = {m["scene"]: names[n] for n in names if (m := _MS.match(n))}
        for scene in sorted(set(pans) | set(mss)):
            pan, ms = pans.get(scene), mss.get(scene)
            name = os.path.basename(pan or ms)[:len(scene)]
            output = os.path.join(out_dir, f"{name}.tif")
            if pan and ms:
                scenes.append(Scene(name, os.path.join(root, pan), (os.path.join(root, ms),), output))
            else:
                have, want = (pan, f"{name}_ms.tif") if pan else (ms, f"{name}_pan.tif")
                scenes.append(Scene(name, os.path.join(root, have), (), output,
                                    error=f"{os.path.join(root, have)} has no partner {want}: add it or move the file out."))
        for key, real in sorted(names.items()):
            m = _B8.match(key)
            if not m:
                continue
            name = real[:len(m["scene"])]
            suffix = real[-4:] if real.lower().endswith(".tif") else real[-5:]
            bands = [names.get(f"{m['scene']}_{b.lower()}{suffix.lower()}") for b in LANDSAT_MS_BANDS]
            output = os.path.join(out_dir, f"{name}.tif")
            missing = [b for b, n in zip(LANDSAT_MS_BANDS, bands) if n is None]
            if missing:
                scenes.append(Scene(name, os.path.join(root, real), (), output,
                                    error=f"Landsat scene {name} lacks band file(s) {', '.join(missing)} "
                                          f"beside {real}: the MS is B2..B5."))
            else:
                scenes.append(Scene(name, os.path.join(root, real),
                                    tuple(os.path.join(root, n) for n in bands), output))
    return sorted(scenes, key=lambda s: s.name)


def read_manifest(path: str, out_dir: str) -> list[Scene]:
    """Rows ``pan,ms,out[,method]`` (a header row is allowed). Relative inputs are
    relative to the manifest's folder, relative outputs to ``out_dir``."""
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [[c.strip() for c in row] for row in csv.reader(handle) if any(c.strip() for c in row)]
    if rows and [c.lower() for c in rows[0][:3]] == ["pan", "ms", "out"]:
        rows = rows[1:]
    scenes = []
    for line, row in enumerate(rows, start=1):
        if len(row) < 3 or len(row) > 4 or not all(row[:3]):
            raise PansharpenError(
                f"{path}, row {line}: expected pan,ms,out[,method], got {','.join(row)!r}: fix the manifest."
            )
        pan, ms, out = (os.path.join(base, row[0]), os.path.join(base, row[1]), os.path.join(out_dir, row[2]))
        name = os.path.splitext(os.path.basename(out))[0]
        scenes.append(Scene(name, pan, (ms,), out, method=(row[3] if len(row) == 4 and row[3] else None)))
    return scenes


# ---------------------------------------------------------------- one scene, on a worker

_MODELS: OrderedDict[tuple, object] = OrderedDict()  # least recently used first
_MODELS_LOCK = threading.Lock()
MAX_MODELS = 4  # per process: a batch uses one or two; --adapt makes one per scene


def cached_prepare(name: str, **kwargs):
    """``methods.prepare`` that keeps deep models loaded in this process (the ``MAX_MODELS``
    last used), keyed by method, weights file (path, size, mtime) and the other arguments
    but the anchor's share (the check and the run may use different ones: the one model
    serves both); classical ones are made anew."""
    from .anchor import ANCHOR
    from .classical import CLASSICAL
    from .methods import prepare, with_anchor

    if name in CLASSICAL:
        return prepare(name, **kwargs)
    anchor = kwargs.pop("anchor", ANCHOR)
    weights = kwargs.get("weights")
    key = (name, tuple(_stat(weights)) if weights else None, tuple(sorted(kwargs.items())))
    with _MODELS_LOCK:
        cached_prepare.uses += 1
        if key not in _MODELS:
            _pin_gpu(kwargs.get("device", "auto"))
            while len(_MODELS) >= MAX_MODELS:
                _MODELS.popitem(last=False)
            _MODELS[key] = prepare(name, anchor=0.0, **kwargs)
            cached_prepare.loads += 1
        _MODELS.move_to_end(key)
        return with_anchor(_MODELS[key], anchor, kwargs["ratio"], kwargs.get("sensor"))


cached_prepare.loads = cached_prepare.uses = 0  # deep models loaded, and asked for


def _pin_gpu(device: str) -> None:
    """On a machine with several GPUs, a LocalCluster worker (named 0, 1, ...) takes GPU
    ``name % count``; other workers keep CUDA's current device (set CUDA_VISIBLE_DEVICES)."""
    if device == "cpu":
        return
    try:
        import torch
        from distributed import get_worker

        count = torch.cuda.device_count()
        name = get_worker().name
    except (ImportError, ValueError):
        return
    if count > 1 and isinstance(name, int):
        torch.cuda.set_device(name % count)


def _stat(path: str) -> list:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def run_scene(scene: Scene, template: SharpenRequest, sample: int = DEFAULT_SAMPLE) -> dict:
    """Sharpen one scene unless its output is up to date; a summary row, never an exception."""
    row = {"scene": scene.name, "output": scene.output, "worker": _worker_name()}
    if scene.error:
        return {**row, "status": "failed", "error": scene.error}
    start = time.perf_counter()
    hidden = _hidden_name(scene.output)
    ms = None
    try:
        ms = _ms_source(scene)
        request = dataclasses.replace(template, pan=scene.pan, ms=ms, output=hidden,
                                      method=scene.method or template.method, overwrite=False)
        model, reason = _candidate(request)
        record = _record(scene, request, model)
        if not template.overwrite and os.path.exists(scene.output):
            previous = read_record(scene.output)
            if previous is None:
                raise PansharpenError(f"The output {scene.output} exists and was not made by pansharpen batch: "
                                      "move it away, or use --overwrite to replace it.")
            if _key(previous) == _key(record):
                return _skipped(row, previous)
        os.makedirs(os.path.dirname(hidden), exist_ok=True)
        _remove_stale(scene.output, hidden)
        from .pipeline import sharpen

        result = sharpen(request, prepare_method=cached_prepare)  # as `pansharpen sharpen` runs it
        seconds = time.perf_counter() - start
        megapixels = result.info.width * result.info.height / 1e6
        reason = getattr(result, "reason", "") or reason
        outcome = {"method": result.method, "reason": reason, "seconds": round(seconds, 3),
                   "megapixels": round(megapixels, 4), "mp_per_s": round(megapixels / seconds, 4)}
        if sample:
            from .scoring import score_sample

            scores = score_sample(hidden, pan=scene.pan, ms=ms, size=sample,
                                  sensor=request.sensor, pan_band=request.pan_band)
            outcome.update({k: round(float(v), 5) for k, v in scores.items()})
        _write_record(hidden, {**record, "result": outcome})
        os.replace(hidden, scene.output)
        return {**row, **outcome, "status": "sharpened",
                "model_loads": cached_prepare.loads, "model_uses": cached_prepare.uses}
    except PansharpenError as exc:
        return {**row, "status": "failed", "error": _one_line(str(exc))}
    except Exception as exc:  # a bug or a system error: still one line, and the batch goes on
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return {**row, "status": "failed",
                "error": _one_line(f"{type(exc).__name__}: {exc} ({os.path.basename(where.filename)}:{where.lineno})")}
    finally:
        if os.path.exists(hidden):
            os.remove(hidden)
        _drop_vsimem(ms)


def up_to_date(scene: Scene, template: SharpenRequest) -> dict | None:
    """The row of a scene whose output is up to date, else None: checked where the batch
    is started, so that a rerun submits nothing (the task checks again on its worker)."""
    if template.overwrite or scene.error or not os.path.exists(scene.output):
        return None
    ms = None
    try:
        ms = _ms_source(scene)
        request = dataclasses.replace(template, pan=scene.pan, ms=ms, method=scene.method or template.method)
        model, _ = _candidate(request)
        previous = read_record(scene.output)
        if previous is not None and _key(previous) == _key(_record(scene, request, model)):
            return _skipped({"scene": scene.name, "output": scene.output, "worker": "client"}, previous)
    except (PansharpenError, OSError):
        pass  # the task will say what is wrong
    finally:
        _drop_vsimem(ms)
    return None


def _skipped(row: dict, record: dict) -> dict:
    return {**row, **record.get("result", {}), "status": "skipped"}


def _drop_vsimem(path: str | None) -> None:
    if path and path.startswith("/vsimem/"):
        from osgeo import gdal

        from .gdal_errors import gdal_exceptions

        with gdal_exceptions():
            gdal.Unlink(path)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def hidden_folder(output: str) -> str:
    """This machine's scratch folder beside an output: the same file system (the rename is
    atomic), and only this machine's processes in it (the writer judges stale scratch files
    by process id, which means nothing on another node of the cluster)."""
    folder = os.path.dirname(os.path.abspath(output))
    return os.path.join(folder, f"{HIDDEN_PREFIX}{socket.gethostname()}")


def _hidden_name(output: str) -> str:
    return os.path.join(hidden_folder(output), f"{os.path.basename(output)}.{uuid.uuid4().hex[:8]}.tif")


def _remove_stale(output: str, hidden: str) -> None:
    """Files of this scene left on this machine by a killed worker: its hidden output and
    the writer's scratch files of it. A scene runs in one task at a time, so they are
    stale even while the killed process is not yet reaped (the writer's own clean-up
    spares the files of a process id that still exists)."""
    folder, mine = os.path.split(hidden)
    ours = re.compile(rf"^\.?{re.escape(os.path.basename(output))}\.[0-9a-f]{{8}}\.tif(\.(partial|packing)-.+)?$")
    for name in os.listdir(folder):
        if name != mine and ours.match(name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))


def remove_hidden_folders(outputs) -> None:
    """The batch's scratch folders, once empty (after the batch: no task can be using them)."""
    for folder in {os.path.dirname(os.path.abspath(o)) for o in outputs}:
        for path in glob.glob(os.path.join(glob.escape(folder), f"{HIDDEN_PREFIX}*")):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _ms_source(scene: Scene) -> str:
    """The MS path; Landsat band files become a band-stacked VRT in GDAL's memory."""
    if len(scene.ms) == 1:
        return scene.ms[0]
    from osgeo import gdal

    from .gdal_errors import gdal_exceptions

    path = f"/vsimem/batch-{uuid.uuid4().hex}.vrt"
    for band in scene.ms:
        if not os.path.exists(band):
            raise PansharpenError(f"The MS band file {band} does not exist: check the scene's files.")
    with gdal_exceptions():
        vrt = gdal.BuildVRT(path, [os.path.abspath(b) for b in scene.ms], separate=True)
        if vrt is None:
            raise PansharpenError(f"Cannot stack {', '.join(scene.ms)} into one MS: check that they share a grid.")
        for b, band_name in enumerate(LANDSAT_BAND_NAMES[:vrt.RasterCount]):
            vrt.GetRasterBand(b + 1).SetDescription(band_name)
        vrt = None  # written to /vsimem on close
    return path


def _candidate(request: SharpenRequest) -> tuple[tuple[str, str | None], str]:
    """((method, weights), why): the model that ``auto`` or the method name picks for the
    pair (as ``sharpen`` picks it, before its own checks), or the user's weights file."""
    from .families import choose_model
    from .pipeline import inspect_pair

    info = inspect_pair(request.pan, request.ms, request.pan_band, request.sensor)
    if request.weights:
        return (request.method, request.weights), ""
    choice = choose_model(info, request.method or "auto")
    return (choice.method, choice.weights), choice.reason


def _record(scene: Scene, request: SharpenRequest, model: tuple[str, str | None]) -> dict:
    """What made an output: inputs, method asked for, model, the options that change it."""
    from .classical import CLASSICAL

    options = {k: v for k, v in dataclasses.asdict(request).items() if k not in NOT_RECORDED}
    if model[0] in CLASSICAL and not model[1]:  # the device and precision do not change it
        options = {k: v for k, v in options.items() if k not in ("device", "half")}
    return {"inputs": [_stat(p) for p in (scene.pan, *scene.ms)], "method": request.method,
            "model": [model[0], _stat(model[1]) if model[1] else None], "options": options}


def _key(record: dict) -> str:
    """What must match for an output to be up to date (JSON, so lists and tuples compare)."""
    return json.dumps({k: record.get(k) for k in ("inputs", "method", "model", "options")}, sort_keys=True)


def read_record(path: str) -> dict | None:
    """The batch record of an output GeoTIFF, or None (missing, unreadable, not a batch output)."""
    if not os.path.exists(path):
        return None
    from osgeo import gdal

    from .gdal_errors import gdal_exceptions

    try:
        with gdal_exceptions():
            ds = gdal.Open(path)
            text = ds.GetMetadataItem(RECORD_KEY) if ds is not None else None
    except RuntimeError:
        return None
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def _write_record(path: str, record: dict) -> None:
    from osgeo import gdal

    from .gdal_errors import gdal_exceptions

    with gdal_exceptions():
        ds = gdal.Open(path, gdal.GA_Update)
        ds.SetMetadataItem(RECORD_KEY, json.dumps(record, sort_keys=True))
        ds.FlushCache()
        ds = None


# ---------------------------------------------------------------- the cluster, on the client

def cluster_size(cpus: int | None = None, memory: int | None = None, gpus: int = 0) -> int:
    """Workers of a LocalCluster: one per GPU, else one per CPU as far as the available
    memory allows (MEMORY_PER_WORKER each). Each runs one scene at a time and gets its
    share of the CPUs for torch (DIFFUSION_PANSHARPENING_THREADS)."""
    if gpus:
        return gpus
    cpus = cpus or len(os.sched_getaffinity(0))
    if memory is None:
        import psutil

        memory = psutil.virtual_memory().available
    return max(1, min(cpus, memory // MEMORY_PER_WORKER))


def _gpu_count(device: str) -> int:
    if device == "cpu":
        return 0
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def run_batch(scenes: list[Scene], template: SharpenRequest, *, scheduler: str | None = None,
              workers: int | None = None, threads: int = 1, retries: int = DEFAULT_RETRIES,
              sample: int = DEFAULT_SAMPLE, stream=sys.stderr, client=None) -> list[dict]:
    """Run every scene as one Dask task; summary rows in the order of ``scenes``.

    On ``client`` when given (left open), else on ``scheduler``, else on a LocalCluster
    made for the batch (``cluster_size``, at most one worker per scene to run, or
    ``workers`` x ``threads``). Outputs already up to date are not submitted.

    A task whose worker was lost is submitted again up to ``retries`` times (after the
    scheduler's own rescheduling); a scene that fails says why in its row. An output
    that exists is skipped when its record matches, sharpened again when it does not,
    and refused when it has no record (not a batch output), unless ``template.overwrite``.
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise PansharpenError("pansharpen batch needs Dask: install it with "
                              "`pip install 'dask[distributed]'` into the Python that runs pansharpen.") from None

    say = (lambda text: print(text, file=stream, flush=True)) if stream else (lambda text: None)
    rows = {i: row for i, row in enumerate(up_to_date(s, template) for s in scenes) if row is not None}
    for done, row in enumerate(rows.values(), start=1):
        say(_progress_line(done, len(scenes), row))
    if len(rows) == len(scenes):
        return [rows[i] for i in range(len(scenes))]
    cluster, own_client = None, client is None
    if scheduler and client is None:
        if workers:
            say("--workers is for the local cluster: the scheduler's workers run the scenes.")
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as exc:  # TimeoutError included
            raise PansharpenError(f"Cannot reach the Dask scheduler {scheduler} ({_one_line(str(exc))}): "
                                  "start one (`dask scheduler`) or check the address.") from None
    elif client is None:
        from .families import CLASSICAL_NAMES

        deep = any((s.method or template.method) not in CLASSICAL_NAMES for s in scenes)
        count = workers or min(cluster_size(gpus=_gpu_count(template.device) if deep else 0),
                               len(scenes) - len(rows))
        torch_threads = max(1, len(os.sched_getaffinity(0)) // (count * threads))
        cluster = LocalCluster(n_workers=count, threads_per_worker=threads, processes=True, host="127.0.0.1",
                               dashboard_address=":8787" if _has_dashboard() else None,
                               env=worker_env(torch_threads))
        client = Client(cluster)
        say(f"Local Dask cluster: {count} worker(s) x {threads} thread(s), {torch_threads} torch thread(s) each.")
    try:
        if "dashboard" in client.scheduler_info().get("services", {}):
            say(f"Dask dashboard: {client.dashboard_link}")
        _gather(client, as_completed, scenes, template, retries, sample, say, rows)
        remove_hidden_folders(s.output for s in scenes)
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    return [rows[i] for i in range(len(scenes))]


def worker_env(threads: int) -> dict[str, str]:
    """A local worker's share of the CPUs for torch and the BLAS/OpenMP pools (Dask's nanny
    would set the latter to 1)."""
    return {name: str(threads) for name in (THREADS_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                            "MKL_NUM_THREADS")}


def _has_dashboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _gather(client, as_completed, scenes, template, retries, sample, say, rows: dict[int, dict]) -> None:
    """Submit every scene not in ``rows`` and add its row there as it completes."""
    token = uuid.uuid4().hex[:6]

    def submit(i: int, attempt: int):
        return client.submit(run_scene, scenes[i], template, sample, pure=False,
                             key=f"pansharpen-{scenes[i].name}-{token}-{attempt}")

    futures = {submit(i, 1): (i, 1) for i in range(len(scenes)) if i not in rows}
    pending = as_completed(list(futures))
    for future in pending:
        i, attempt = futures.pop(future)
        try:
            row = future.result()
        except Exception as exc:  # the task never returned: its worker died or could not be reached
            if attempt <= retries:
                say(f"{scenes[i].name}: {type(exc).__name__} ({_one_line(str(exc))[:200]}); trying again.")
                retry = submit(i, attempt + 1)
                futures[retry] = (i, attempt + 1)
                pending.add(retry)
                continue
            row = {"scene": scenes[i].name, "output": scenes[i].output, "status": "failed",
                   "error": _one_line(f"{type(exc).__name__}: {exc}")}
        rows[i] = {**row, "attempts": attempt}
        say(_progress_line(len(rows), len(scenes), row))


def _progress_line(done: int, total: int, row: dict, width: int = 20) -> str:
    filled = round(width * done / total)
    head = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {row['scene']}: {row['status']}"
    if row["status"] == "failed":
        return f"{head}: {row.get('error')}"
    parts = [row.get("method", "?")]
    if row.get("seconds") is not None:
        parts.append(f"{row['seconds']:.1f} s, {row.get('mp_per_s', 0):.2f} MP/s")
    if row.get("QNR") is not None:
        parts.append(f"QNR {row['QNR']:.3f}, HQNR {row['HQNR']:.3f}")
    return f"{head} ({'; '.join(parts)})"


def write_summary(rows: list[dict], prefix: str) -> tuple[str, str]:
    """``prefix.csv`` and ``prefix.json``: one row per scene (SUMMARY_FIELDS)."""
    csv_path, json_path = f"{prefix}.csv", f"{prefix}.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump([{k: row.get(k) for k in SUMMARY_FIELDS} for row in rows], handle, indent=2)
    return csv_path, json_path


# ---------------------------------------------------------------- the command

def add_arguments(parser) -> None:
    """The ``batch`` options besides the common ones (cli.add_common)."""
    parser.add_argument("input", help="a folder of pairs (SCENE_pan.tif + SCENE_ms.tif, or Landsat "
                                      "*_B8.TIF + *_B2..B5.TIF), or a CSV manifest pan,ms,out[,method]")
    parser.add_argument("out_dir", help="output folder (made if missing); outputs are SCENE.tif")
    parser.add_argument("--method", default="auto", help="method for every scene (a manifest's 4th column wins)")
    parser.add_argument("--scheduler", default=None,
                        help="a running Dask scheduler, tcp://HOST:PORT (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local cluster workers (default: one per GPU, else per CPU as memory allows)")
    parser.add_argument("--threads", type=int, default=1, help="scenes at a time per local worker (1)")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES,
                        help=f"submit a scene again this often when its worker is lost ({DEFAULT_RETRIES})")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE,
                        help=f"QNR/HQNR on a centred window of N PAN pixels a side ({DEFAULT_SAMPLE}; 0: none)")
    parser.add_argument("--summary", default=None,
                        help="summary path without extension (default OUT_DIR/batch-summary): .csv and .json")
    parser.add_argument("--overwrite", action="store_true", help="sharpen again even when an output is up to date")
    parser.add_argument("--float32", action="store_true", help="write float32 instead of the MS data type")
    parser.add_argument("--full-precision", action="store_true", help="run deep models in float32")
    parser.add_argument("--adapt", type=float, nargs="?", const=120.0, default=None, metavar="SECONDS",
                        help="fine-tune the deep model on each scene first, for about SECONDS (120), as sharpen")
    parser.add_argument("--no-check", action="store_true",
                        help="deep methods: skip the check against the classical methods, as sharpen")
    parser.add_argument("--no-consistency", action="store_true",
                        help="deep methods: keep the network's output as it is, as sharpen")
    parser.add_argument("--anchor", type=float, default=None, metavar="SHARE",
                        help="deep methods: share of the classical anchor in the output, as sharpen")
    parser.add_argument("--register", action="store_true",
                        help="deep methods: move the PAN onto the MS first, as sharpen")
    parser.add_argument("--no-overviews", action="store_true",
                        help="write the full resolution only, no internal overviews, as sharpen")


def template_from_args(args) -> SharpenRequest:
    """The request every scene starts from: the options shared with ``sharpen``."""
    from .pipeline import SharpenRequest

    names = {f.name for f in dataclasses.fields(SharpenRequest)}
    options = {k: v for k, v in vars(args).items()  # --threads is the cluster's, not the request's
               if k in names and k not in ("pan", "ms", "output", "threads")}
    options.update(half=not args.full_precision, check=not args.no_check, consistent=not args.no_consistency,
                   overviews=not args.no_overviews)
    return SharpenRequest(pan="", ms="", output="", **{k: v for k, v in options.items() if k in names})


def run_from_args(args) -> int:
    """``pansharpen batch``: 0 when every scene is sharpened or up to date, 1 when some failed."""
    template = template_from_args(args)
    for flag, value, least in (("--workers", args.workers, 1), ("--threads", args.threads, 1),
                               ("--retries", args.retries, 0), ("--sample", args.sample, 0)):
        if value is not None and value < least:
            raise PansharpenError(f"{flag} {value} does not work: give a whole number of at least {least}.")
    scenes = discover(args.input, args.out_dir)
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as exc:
        raise PansharpenError(f"Cannot make the output folder {args.out_dir} ({exc.strerror}): "
                              "choose another.") from None
    summary = args.summary or os.path.join(args.out_dir, "batch-summary")
    if not os.path.isdir(os.path.dirname(os.path.abspath(summary))):
        raise PansharpenError(f"The folder of the summary {summary} does not exist: create it or choose another.")
    start = time.perf_counter()
    rows = run_batch(scenes, template, scheduler=args.scheduler, workers=args.workers,
                     threads=args.threads, retries=args.retries, sample=args.sample,
                     stream=None if args.quiet else sys.stderr)
    seconds = time.perf_counter() - start
    csv_path, _ = write_summary(rows, summary)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("sharpened", "skipped", "failed")}
    print(f"{len(rows)} scenes in {seconds:.1f} s ({60 * len(rows) / seconds:.1f} per minute): "
          f"{counts['sharpened']} sharpened, {counts['skipped']} up to date, {counts['failed']} failed. "
          f"Summary: {csv_path} (and .json)", file=sys.stderr)
    return 1 if counts["failed"] else 0
