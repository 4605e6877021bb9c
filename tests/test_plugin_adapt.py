"""Scene adaptation and the check behind auto in QGIS (issue 12, item 2): the Processing
parameters ADAPT and CHECK in process, in a background task and in ``qgis_process.bin``,
and the dialog's "Adapt the model to this scene" checkbox. Real QGIS, real engine,
the shipped e2e model adapted for a few seconds; adapted weights go to a temporary
cache folder (DIFFUSION_PANSHARPENING_CACHE), never the user's."""
from __future__ import annotations

import json

import pytest
from qgis.core import Qgis, QgsApplication, QgsProcessingException, QgsProcessingFeedback

from test_plugin_gui import choose, controls, fresh_settings, layers, plugin, wait_for  # noqa: F401
from test_plugin_processing import (PROVIDER, assert_on_pan_grid, qgis_process,  # noqa: F401
                                    qgis_process_env, sample)

ALGORITHM = f"{PROVIDER}:pansharpen"
SECONDS = 10  # adaptation budget of each run: long enough for a few steps on a busy 2-core CPU

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def torch_or_fail():
    from diffusion_pansharpening.engine.methods import torch_available

    if not torch_available():
        pytest.fail("these tests adapt a deep model: install torch in the venv (make install)")


@pytest.fixture
def provider(plugin):
    """The provider as the GUI registers it (one registration for every test here)."""
    return plugin.provider


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh adapted-weights cache for this test (the engine reads the variable per run)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DIFFUSION_PANSHARPENING_CACHE", str(folder))
    return folder


def adapted_files(cache_folder):
    """Every file the engine left in the cache (scratch files included)."""
    return sorted(p for p in cache_folder.rglob("*") if p.is_file()) if cache_folder.exists() else []


class LoggingFeedback(QgsProcessingFeedback):
    """Keeps the log lines and progress values an algorithm reports."""

    def __init__(self):
        super().__init__()
        self.lines, self.values = [], []
        self.progressChanged.connect(self.values.append)

    def pushInfo(self, info):  # noqa: N802 (QGIS's name)
        self.lines.append(info)
        super().pushInfo(info)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


def test_adapt_and_check_are_advanced_parameters_the_help_explains(provider):
    from qgis.core import QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById(ALGORITHM)
    adapt, check = alg.parameterDefinition("ADAPT"), alg.parameterDefinition("CHECK")
    assert adapt.description().startswith("Adapt the model to this scene")
    assert (adapt.defaultValue(), adapt.minimum()) == (0, 0) and adapt.maximum() >= 1800
    assert check.defaultValue() is True
    assert check.description() == "Check the deep model against the classical methods on a sample first"
    for definition in (adapt, check):
        assert definition.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    help_text = alg.shortHelpString()
    assert "Adapt the model to this scene:" in help_text and "DIFFUSION_PANSHARPENING_CACHE" in help_text
    assert "Check the deep model against the classical methods on a sample first:" in help_text
    assert "<" not in help_text  # plain text, as qgis_process prints it


def test_processing_adapts_e2e_logs_the_gain_and_keeps_the_weights_in_the_cache(provider, sample, cache,
                                                                              tmp_path):
    import processing

    pan, ms = sample
    out = tmp_path / "adapted.tif"
    feedback = LoggingFeedback()
    result = processing.run(ALGORITHM, {"PAN": pan, "MS": ms, "METHOD": "e2e", "DEVICE": "cpu",
                                        "ADAPT": SECONDS, "OUTPUT": str(out)}, feedback=feedback)
    assert result["OUTPUT"] == str(out) and result["METHOD_USED"] == "e2e"
    assert_on_pan_grid(str(out), pan)
    # the engine's own lines reach the Processing log: the check, then the adaptation
    assert "Checked e2e: Q2n" in feedback.log and "sample of this scene" in feedback.log
    assert "Adapted to this scene in" in feedback.log and "held-out L1" in feedback.log
    assert "Adapted to this scene in" in result["REASON"]
    kept = adapted_files(cache)
    assert [p.suffix for p in kept] == [".safetensors"]  # one adapted model, no scratch file
    assert f"kept ({kept[0]})" in feedback.log
    # the adaptation is the first half of the progress bar, the run the second
    assert any(0 < value <= 50 for value in feedback.values)
    assert feedback.values == sorted(feedback.values) and feedback.values[-1] == pytest.approx(100)


def test_cancel_during_adaptation_leaves_no_output_and_no_adapted_file(provider, sample, cache, tmp_path):
    import processing

    pan, ms = sample
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    feedback = LoggingFeedback()
    # the first progress report comes from the adaptation's first step (no check here)
    feedback.progressChanged.connect(lambda value: feedback.cancel() if 0 < value < 50 else None)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(ALGORITHM, {"PAN": pan, "MS": ms, "METHOD": "e2e", "DEVICE": "cpu",
                                   "ADAPT": SECONDS, "CHECK": False,
                                   "OUTPUT": str(out_dir / "cancelled.tif")}, feedback=feedback)
    assert feedback.isCanceled() and max(feedback.values) < 50  # cancelled while adapting
    assert "Checked" not in feedback.log and "Adapted to this scene" not in feedback.log
    assert list(out_dir.iterdir()) == []
    assert adapted_files(cache) == []


def test_qgis_process_runs_with_adapt(qgis_process_env, sample, tmp_path):
    pan, ms = sample
    cache_folder = tmp_path / "cache"
    env = dict(qgis_process_env, DIFFUSION_PANSHARPENING_CACHE=str(cache_folder))
    out = tmp_path / "headless_adapted.tif"
    done = qgis_process(env, "pansharpen", PAN=pan, MS=ms, METHOD="e2e", DEVICE="cpu",
                        ADAPT=SECONDS, OUTPUT=out)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)["results"]
    assert results["METHOD_USED"] == "e2e" and "Adapted to this scene in" in results["REASON"]
    assert_on_pan_grid(str(out), pan)
    assert [p.suffix for p in adapted_files(cache_folder)] == [".safetensors"]


def test_dialog_offers_adaptation_for_deep_methods_and_passes_it_to_the_algorithm(controls, cache, tmp_path,
                                                                                 qgis_iface):
    from diffusion_pansharpening.plugin.core import settings

    assert not controls.adapt_check.isChecked()  # off until the user turns it on
    assert controls.adapt_spin.value() == settings.DEFAULT_ADAPT_SECONDS == 120
    choose(controls.method_combo, "brovey")
    controls.adapt_check.setChecked(True)  # ticked earlier, for a deep method
    assert not controls.adapt_check.isEnabled() and not controls.adapt_spin.isEnabled()
    assert controls.parameters()["ADAPT"] == 0  # a classical method never adapts
    choose(controls.method_combo, "auto")  # auto takes a shipped deep model on the sample
    assert controls.adapt_check.isEnabled() and controls.adapt_spin.isEnabled()

    choose(controls.method_combo, "e2e")
    choose(controls.device_combo, "cpu")
    controls.adapt_spin.setValue(SECONDS)
    text = controls.adapt_label.text()
    assert text.startswith("Extra time: about") and f"{SECONDS} s of fine-tuning e2e" in text
    assert controls.parameters()["ADAPT"] == SECONDS
    out = tmp_path / "dialog_adapted.tif"
    controls.output_widget.setFilePath(str(out))
    job = controls.run()
    wait_for(job, timeout=180)
    assert job.layer is not None and out.exists()
    assert "Adapted to this scene in" in job.reason
    assert any("Adapted to this scene in" in m for m in qgis_iface.messageBar().get_messages(Qgis.Success))
    assert [p.suffix for p in adapted_files(cache)] == [".safetensors"]
    assert (settings.adapt(), settings.adapt_seconds()) == (True, SECONDS)  # remembered


def test_preview_never_adapts(controls, layers, cache, qgis_iface):
    pan = layers[0]
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(pan.crs())
    canvas.setExtent(pan.extent())
    choose(controls.method_combo, "e2e")
    choose(controls.device_combo, "cpu")
    controls.adapt_check.setChecked(True)
    controls.adapt_spin.setValue(SECONDS)
    job = controls.preview()
    assert job.parameters["ADAPT"] == 0  # a quick look, not a fine-tuning
    wait_for(job)
    assert job.layer is not None and "Adapted" not in job.reason
    assert adapted_files(cache) == []


def test_the_estimate_is_the_budget_plus_the_models_run(controls):
    from diffusion_pansharpening.plugin.core.explain import CPU_MP_PER_S, adapt_estimate, duration

    assert [duration(s) for s in (0.2, 45, 60, 125)] == ["1 s", "45 s", "1 min", "2 min 5 s"]
    pair = controls.pair  # the 654 x 306 sample: 0.2 MP
    run = pair.width * pair.height / 1e6 / CPU_MP_PER_S["fose"]
    text = adapt_estimate(pair, "fose", 120)
    assert text.startswith(f"Extra time: about {duration(120 + run)} (2 min of fine-tuning fose")
    assert f"about {duration(run)} on a CPU" in text
