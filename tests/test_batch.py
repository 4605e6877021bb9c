"""`pansharpen batch` on real Dask: a `dask scheduler` and two `dask worker` processes
started here on 127.0.0.1 (one killed mid-scene), a LocalCluster, and crops of the real
Landsat-8 scene in ../shared/data. Every output is compared with `pansharpen sharpen`."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from conftest import shared_file

BIN = Path(sys.executable).parent
PANSHARPEN, DASK = str(BIN / "pansharpen"), str(BIN / "dask")
LANDSAT_MS = ("B2", "B3", "B4", "B5")


# ---------------------------------------------------------------- real pairs

def landsat(band: str) -> str:
    return str(shared_file(f"landsat8/l8_{band}.tif"))


def crop(src: str, dst: Path, x: int, y: int, size: int) -> None:
    assert gdal.Translate(str(dst), src, srcWin=[x, y, size, size]) is not None


def make_pair(folder: Path, name: str, x: int, y: int, size: int = 128) -> tuple[Path, Path]:
    """SCENE_pan.tif (2*size PAN pixels) + SCENE_ms.tif (size MS pixels, B2..B5) cut from
    the same place of the Landsat-8 scene (MS pixel (x, y) under PAN pixels (2x, 2y))."""
    stack = gdal.BuildVRT("", [landsat(b) for b in LANDSAT_MS], separate=True)
    pan, ms = folder / f"{name}_pan.tif", folder / f"{name}_ms.tif"
    crop(landsat("B8"), pan, 2 * x, 2 * y, 2 * size)
    assert gdal.Translate(str(ms), stack, srcWin=[x, y, size, size]) is not None
    return pan, ms


def make_landsat_scene(folder: Path, prefix: str, x: int, y: int, size: int = 128) -> None:
    """Landsat's own naming: PREFIX_B8.TIF and PREFIX_B2..B5.TIF."""
    crop(landsat("B8"), folder / f"{prefix}_B8.TIF", 2 * x, 2 * y, 2 * size)
    for band in LANDSAT_MS:
        crop(landsat(band), folder / f"{prefix}_{band}.TIF", x, y, size)


def read(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    assert ds is not None, path
    return ds.ReadAsArray()


def assert_same_image(got: np.ndarray, want: np.ndarray, name: str = "") -> None:
    """Equal but for a value on a rounding tie: the upsampling's BLAS products round in
    float32 by the kernel and thread split OpenBLAS picks (this process runs two BLAS
    threads, the command line and its workers one), which can move such a value by one
    digital number (seen: 50 of 262144 pixels on an AVX2 CPU, none on an AVX-512 one)."""
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (name, diff.max(), (diff > 0).mean())


def sharpen_reference(pan, ms, out: Path, method: str, env: dict | None = None) -> np.ndarray:
    """The same pair through `pansharpen sharpen`: its main, in this process, or with
    ``env`` a command of its own (with one thread, as a Dask worker runs: the network's
    bfloat16 sums, like the BLAS products, round by the thread split)."""
    from diffusion_pansharpening.engine.cli import main

    args = ["sharpen", str(pan), str(ms), str(out), "--method", method, "--quiet"]
    if env is None:
        assert main(args) == 0
    else:
        subprocess.run([PANSHARPEN, *args], env=env, check=True, timeout=120)
    return read(out)


def summary(out_dir: Path) -> dict[str, dict]:
    rows = json.loads((out_dir / "batch-summary.json").read_text())
    with open(out_dir / "batch-summary.csv", newline="") as handle:
        assert [r["scene"] for r in csv.DictReader(handle)] == [r["scene"] for r in rows]
    return {row["scene"]: row for row in rows}


def hidden_files(folder: Path) -> list[str]:
    """Hidden files and folders (scratch) left in an output folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- a real scheduler and two workers

class DaskProcesses:
    """`dask scheduler` + `dask worker` processes, each in its own process group."""

    def __init__(self, folder: Path):
        self.folder, self.groups, self.workers = folder, [], {}
        env = {**os.environ, "DIFFUSION_PANSHARPENING_THREADS": "1",
               # the scheduler gives up on a task at the first worker lost with it, so the
               # client's own retry (--retries) is what brings the scene back
               "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
        self.env = env
        scheduler_file = folder / "scheduler.json"
        self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(scheduler_file)], "scheduler")
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        self.address = json.loads(scheduler_file.read_text())["address"]

    def _start(self, command, label):
        log = open(self.folder / f"{label}.log", "w")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=True, cwd=self.folder)
        self.groups.append(proc)
        return proc

    def start_worker(self, name: str):
        self.workers[name] = self._start(
            [DASK, "worker", self.address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
             "--name", name, "--local-directory", str(self.folder / name)], name)

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its nanny: the worker is lost, not restarted."""
        proc = self.workers[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in reversed(self.groups):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.groups):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        deadline = time.monotonic() + 15
        for proc in self.groups:  # no process of any group is left (children exit after their nanny)
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"a dask process of group {proc.pid} outlived its stop")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def dask_processes(tmp_path):
    procs = DaskProcesses(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()


def test_batch_on_a_scheduler_survives_a_killed_worker_and_reruns_nothing(tmp_path, dask_processes):
    """A manifest of 4 classical scenes, one landsat8 e2e scene and a bad pair through
    `--scheduler`; the e2e scene's worker is SIGKILLed while it writes. Every good scene
    ends complete and equal to `pansharpen sharpen`, the bad one fails alone in one
    line, no scratch is left, and a rerun rewrites nothing."""
    pairs, out = tmp_path / "pairs", tmp_path / "out"
    pairs.mkdir()
    rows = [("c0", 40, 60, "gsa"), ("c1", 200, 60, "brovey"), ("c2", 360, 60, "gsa"),
            ("c3", 40, 300, "brovey"), ("deep", 200, 300, "e2e")]
    made = {name: make_pair(pairs, name, x, y, 128 if method != "e2e" else 192) for name, x, y, method in rows}
    make_pair(pairs, "bad", 360, 300)
    (pairs / "bad_ms.tif").write_bytes(b"not a raster, just text")
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("pan,ms,out,method\n" + "".join(
        f"pairs/{n}_pan.tif,pairs/{n}_ms.tif,{n}.tif,{m}\n" for n, _, _, m in rows)
        + "pairs/bad_pan.tif,pairs/bad_ms.tif,bad.tif,gsa\n")
    for name in ("w1", "w2"):
        dask_processes.start_worker(name)
    from dask.distributed import Client

    command = [PANSHARPEN, "batch", str(manifest), str(out), "--scheduler", dask_processes.address]
    with Client(dask_processes.address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
        names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
        batch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dask_processes.env)
        killed = None
        deadline = time.monotonic() + 90
        while killed is None:  # the deep scene is being written (its scratch file exists): kill its worker
            assert batch.poll() is None, f"the batch ended before a worker could be killed: {batch.stderr.read()}"
            assert time.monotonic() < deadline, "the deep scene never started"
            writing = list(out.glob(".pansharpen-batch-*/.deep.tif.*.p*-*")) if out.exists() else []  # partial-, packing-
            busy = [addr for addr, keys in client.processing().items() if any("-deep-" in str(k) for k in keys)]
            if writing and busy:
                killed = busy[0]
                dask_processes.kill_worker(names[killed])
            time.sleep(0.05)
        stdout, stderr = batch.communicate(timeout=120)
    assert batch.returncode == 1, stderr  # one scene failed
    assert "6 scenes" in stderr and "5 sharpened" in stderr and "1 failed" in stderr, stderr
    result = summary(out)
    assert result["bad"]["status"] == "failed"
    error = result["bad"]["error"]
    assert "bad_ms.tif" in error and "\n" not in error and "Traceback" not in stderr, error
    assert result["deep"]["attempts"] == 2 and result["deep"]["worker"] != killed
    assert result["deep"]["method"] == "e2e"
    assert hidden_files(out) == []  # the killed worker's scratch files are gone
    assert not (out / "bad.tif").exists()

    # a Dask worker's own environment: one torch thread (DaskProcesses), one BLAS thread (its nanny)
    one_thread = {**dask_processes.env, **{v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    for name, _, _, method in rows:
        row = result[name]
        assert row["status"] == "sharpened" and row["method"] == method, row
        assert 0 < row["QNR"] <= 1 and 0 < row["HQNR"] <= 1 and row["mp_per_s"] > 0, row
        reference = sharpen_reference(*made[name], tmp_path / f"ref-{name}.tif", method, one_thread)
        assert_same_image(read(out / f"{name}.tif"), reference, name)
        assert gdal.Open(str(out / f"{name}.tif")).GetGeoTransform() == \
            gdal.Open(str(tmp_path / f"ref-{name}.tif")).GetGeoTransform()

    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dask_processes.env)
    assert again.returncode == 1 and "0 sharpened, 5 up to date, 1 failed" in again.stderr, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == before
    assert [r["status"] for n, r in summary(out).items() if n != "bad"] == ["skipped"] * 5
    assert summary(out)["deep"]["QNR"] == result["deep"]["QNR"]  # the record keeps the first run's report


def test_local_cluster_batch_of_a_folder_with_landsat_names(tmp_path):
    """A folder of SCENE_pan/SCENE_ms pairs and a Landsat B8 + B2..B5 set on a
    LocalCluster, an input changed (that scene alone runs again), a rerun with nothing
    to do (no cluster at all), then --overwrite."""
    scenes, out = tmp_path / "scenes", tmp_path / "out"
    scenes.mkdir()
    pairs = {"north": make_pair(scenes, "north", 60, 40), "south": make_pair(scenes, "south", 260, 420)}
    make_landsat_scene(scenes, "LC08_L1TP_TEST", 420, 200)
    command = [PANSHARPEN, "batch", str(scenes), str(out), "--method", "brovey", "--workers", "1", "--sample", "200"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    assert "Local Dask cluster: 1 worker(s)" in first.stderr and "3 sharpened" in first.stderr, first.stderr
    rows = summary(out)
    assert set(rows) == {"north", "south", "LC08_L1TP_TEST"}
    assert {r["status"] for r in rows.values()} == {"sharpened"}
    assert len({r["worker"] for r in rows.values()}) == 1

    stack = tmp_path / "landsat_ms.vrt"
    gdal.BuildVRT(str(stack), [str(scenes / f"LC08_L1TP_TEST_{b}.TIF") for b in LANDSAT_MS], separate=True)
    pairs["LC08_L1TP_TEST"] = (scenes / "LC08_L1TP_TEST_B8.TIF", stack)
    for name, (pan, ms) in pairs.items():
        reference = sharpen_reference(pan, ms, tmp_path / f"ref-{name}.tif", "brovey")
        assert_same_image(read(out / f"{name}.tif"), reference, name)

    os.utime(pairs["south"][1])  # a newer MS: that scene only is sharpened again
    second = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0 and "1 sharpened, 2 up to date" in second.stderr, second.stderr
    assert summary(out)["south"]["status"] == "sharpened"

    settled = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert settled.returncode == 0 and "0 sharpened, 3 up to date" in settled.stderr, settled.stderr
    assert "Local Dask cluster" not in settled.stderr  # nothing to do: no cluster is started

    third = subprocess.run(command + ["--overwrite"], capture_output=True, text=True, timeout=180)
    assert third.returncode == 0 and "3 sharpened" in third.stderr, third.stderr
    assert_same_image(read(out / "north.tif"), read(tmp_path / "ref-north.tif"))
    assert hidden_files(out) == []


def test_worker_loads_a_model_once_for_many_scenes(tmp_path):
    """Two deep scenes in one LocalCluster worker: the model is loaded once, and both the
    check against the classical methods and the run of each scene use that one (192-pixel
    PAN scenes: big enough for the check, guard.MIN_REDUCED)."""
    from diffusion_pansharpening.engine import batch
    from diffusion_pansharpening.engine.pipeline import SharpenRequest

    scenes = [batch.Scene(n, str(p), (str(m),), str(tmp_path / f"{n}.tif"))
              for n, (p, m) in {n: make_pair(tmp_path, n, x, 60, 96) for n, x in (("a", 60), ("b", 300))}.items()]
    rows = batch.run_batch(scenes, SharpenRequest("", "", "", method="e2e", check=True), workers=1, sample=0,
                           stream=None)
    assert [r["status"] for r in rows] == ["sharpened", "sharpened"]
    assert [r["model_loads"] for r in rows] == [1, 1]
    assert [r["model_uses"] for r in rows] == [2, 4]


# ---------------------------------------------------------------- discovery and errors (no cluster)

def test_folder_discovery_reports_incomplete_pairs(tmp_path):
    from diffusion_pansharpening.engine.batch import discover

    for name in ("a_pan.tif", "a_ms.tif", "b_PAN.TIF", "b_MS.TIF", "lonely_ms.tif",
                 "LC09_X_B8.TIF", "LC09_X_B2.TIF", "LC09_X_B3.TIF", "LC09_X_B5.TIF", "LC09_X_B1.TIF"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old_pan.tif").write_bytes(b"")  # inside the output folder: not a scene
    scenes = {s.name: s for s in discover(str(tmp_path), str(tmp_path / "out"))}
    assert set(scenes) == {"a", "b", "lonely", "LC09_X"}
    assert scenes["b"].ms == (str(tmp_path / "b_MS.TIF"),) and scenes["b"].error is None
    assert scenes["a"].output == str(tmp_path / "out" / "a.tif")
    assert "no partner lonely_pan.tif" in scenes["lonely"].error
    assert "lacks band file(s) B4" in scenes["LC09_X"].error


def test_manifest_paths_and_errors(tmp_path):
    from diffusion_pansharpening.engine.batch import discover
    from diffusion_pansharpening.engine.errors import PansharpenError

    manifest = tmp_path / "m.csv"
    manifest.write_text("p1.tif,m1.tif,one.tif\n/abs/p2.tif,m2.tif,/elsewhere/two.tif,gsa\n")
    one, two = discover(str(manifest), "results")
    assert (one.pan, one.ms, one.output, one.method) == (str(tmp_path / "p1.tif"), (str(tmp_path / "m1.tif"),),
                                                         "results/one.tif", None)
    assert (two.pan, two.output, two.method) == ("/abs/p2.tif", "/elsewhere/two.tif", "gsa")
    manifest.write_text("pan,ms,out\np1.tif,m1.tif\n")
    with pytest.raises(PansharpenError, match="row 1: expected pan,ms,out"):
        discover(str(manifest), "results")
    manifest.write_text("p1.tif,m1.tif,same.tif\np2.tif,m2.tif,same.tif\n")
    with pytest.raises(PansharpenError, match="would both write"):
        discover(str(manifest), "results")


def test_engine_imports_and_batch_says_what_to_install_without_dask(tmp_path):
    code = (
        "import sys; sys.modules['dask'] = sys.modules['distributed'] = None\n"
        "from diffusion_pansharpening.engine import cli, pipeline, methods, scoring, batch\n"
        "assert cli.build_parser().parse_args(['methods']).command == 'methods'\n"
        f"sys.exit(cli.main(['batch', {str(tmp_path)!r}, {str(tmp_path / 'o')!r}]))\n"
    )
    make_pair(tmp_path, "x", 100, 100, 64)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: pansharpen batch needs Dask: install it")


def test_scene_task_refuses_a_foreign_output_and_skips_its_own(tmp_path):
    """The worker function alone: an output not made by the batch is never replaced
    silently; its own output is skipped while inputs and method stay the same."""
    from diffusion_pansharpening.engine import batch
    from diffusion_pansharpening.engine.pipeline import SharpenRequest

    pan, ms = make_pair(tmp_path, "s", 300, 500, 64)
    scene = batch.Scene("s", str(pan), (str(ms),), str(tmp_path / "out" / "s.tif"))
    (tmp_path / "out").mkdir()
    sharpen_reference(pan, ms, tmp_path / "out" / "s.tif", "brovey")
    foreign, brovey = (tmp_path / "out" / "s.tif").read_bytes(), read(tmp_path / "out" / "s.tif")
    gsa = SharpenRequest("", "", "", method="gsa")
    row = batch.run_scene(scene, gsa, sample=0)
    assert row["status"] == "failed" and "was not made by pansharpen batch" in row["error"]
    assert (tmp_path / "out" / "s.tif").read_bytes() == foreign
    assert batch.run_scene(scene, SharpenRequest("", "", "", method="gsa", overwrite=True), 0)["status"] == "sharpened"
    assert batch.read_record(scene.output)["method"] == "gsa"
    assert batch.run_scene(scene, gsa, sample=0)["status"] == "skipped"
    assert batch.run_scene(scene, SharpenRequest("", "", "", method="brovey"), 0)["status"] == "sharpened"
    assert_same_image(read(scene.output), brovey)
    batch.remove_hidden_folders([scene.output])  # what run_batch does at the end: only empty ones go
    assert hidden_files(tmp_path / "out") == []


def test_local_cluster_size_follows_gpus_cpus_and_memory():
    from diffusion_pansharpening.engine.batch import MEMORY_PER_WORKER, cluster_size

    assert cluster_size(cpus=16, memory=64 * 2**30) == 16
    assert cluster_size(cpus=16, memory=2 * MEMORY_PER_WORKER) == 2  # memory decides
    assert cluster_size(cpus=4, memory=1) == 1
    assert cluster_size(cpus=16, memory=1, gpus=2) == 2  # one worker per GPU


def test_benchmark_script_prints_its_table():
    """benchmarks/batch.py, tiny: a loop and Dask with 1 and 2 workers, each with a rate."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "batch.py"
    result = subprocess.run([sys.executable, str(script), "--scenes", "2", "--size", "256", "--repeats", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r[0].strip() for r in rows[1:]] == ["plain loop of sharpen()", "Dask, 1 worker", "Dask, 2 workers"]
    assert all(float(r[3]) > 0 for r in rows[1:])  # scenes per minute


def test_batch_options_are_those_of_sharpen():
    from diffusion_pansharpening.engine.batch import template_from_args
    from diffusion_pansharpening.engine.cli import build_parser
    from diffusion_pansharpening.engine.pipeline import SharpenRequest

    args = build_parser().parse_args(["batch", "in", "out", "--method", "fose", "--threads", "3", "--tile", "256",
                                      "--no-check", "--adapt", "--float32", "--full-precision", "--sensor", "WV2",
                                      "--anchor", "0.25", "--register", "--no-overviews"])
    assert template_from_args(args) == SharpenRequest(
        "", "", "", method="fose", tile=256, check=False, adapt=120.0, float32=True, half=False, sensor="WV2",
        anchor=0.25, register=True, overviews=False)
    assert template_from_args(build_parser().parse_args(["batch", "in", "out"])) == SharpenRequest("", "", "")
