"""ONNX Runtime as the inference backend of a deep model in float32 on the CPU.

Why (docs/performance.md, "Deep methods in float32 and against the machine's limit"):
on the 2-core EPYC a shipped Landsat-8 ``fose`` tile (536 pixels with its halo) runs
2.0x faster in ONNX Runtime's CPU provider than in eager PyTorch, in float32, e2e 1.5x,
with the same image (largest difference 6e-7 on [0, 1] data): ORT fuses the
elementwise work of the adaptive convolutions (a quarter of an eager tile) into its
graph and keeps the convolutions in its blocked (NCHWc) layout. ``torch.compile``
(inductor, frozen weights) is a little faster per tile (2.3x) but needs a C++ compiler
at run time, which a QGIS user seldom has, and 1-1.5 minutes of compiling per tile
shape on this host when its cache is cold; the ORT export takes 2-7 s, once per model.

How:
- a network is exported (TorchScript tracer, ``dynamo=False``: seconds, no extra
  packages beyond ``onnx``) once, with dynamic height and width, and only when a tile
  shape comes a second time, so a small scene whose few tiles all differ never pays for
  an export. The tracer records the Python branches of the network for the shape it
  traces (e.g. padding to the U-Net's multiple), so that graph is used for another
  shape only after it gave PyTorch's output on a tile of that shape; where it does not,
  that shape gets its own export with static shapes;
- the export traces random stand-in images of the tile's shape; before a session serves
  a shape it runs the first tile of that shape again (kept from its eager run) and must
  give PyTorch's output for it (``CHECK_TOLERANCE``): a check that costs one ORT tile,
  not an extra eager one; when neither graph passes (a tracing surprise) the model
  goes back to eager PyTorch for good, with a warning;
- any failure to export or run does the same; eager PyTorch float32 stays the
  reference (tests/test_models_runtime.py compares the two).
"""
from __future__ import annotations

import importlib.util
import io
import logging
import warnings
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

CHECK_TOLERANCE = 1e-3  # largest |ORT - eager| accepted on the first tile of a shape ([0, 1] data)
OPSET = 17


def available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` (the exporter needs it) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


class _Wrapper(nn.Module):
    """Positional inputs for the exporter (``noise`` is a keyword of the networks)."""

    def __init__(self, net: nn.Module, with_noise: bool):
        super().__init__()
        self.net, self.with_noise = net, with_noise

    def forward(self, pan, lms, ms, noise=None):
        return self.net(pan, lms, ms, noise=noise) if self.with_noise else self.net(pan, lms, ms)


class OrtSession:
    """One exported network for one input shape, run by ONNX Runtime."""

    def __init__(self, net: nn.Module, inputs: list[torch.Tensor], threads: int, dynamic: bool = False):
        import onnxruntime as ort

        self.names = ["pan", "lms", "ms", "noise"][:len(inputs)]
        axes = {name: {2: "height", 3: "width"} for name in self.names}
        axes["ms"] = {2: "ms_height", 3: "ms_width"}
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python branches and its deprecation
            torch.onnx.export(_Wrapper(net, len(inputs) == 4), tuple(inputs), buffer, input_names=self.names,
                              output_names=["out"], opset_version=OPSET, dynamo=False,
                              dynamic_axes=axes if dynamic else None)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        self.used = {i.name for i in self.session.get_inputs()}  # the tracer drops inputs a net ignores

    def __call__(self, inputs: list[np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(self.names, inputs)
                if name in self.used}
        return self.session.run(None, feed)[0]


def _stand_ins(inputs: list[np.ndarray]) -> list[torch.Tensor]:
    """What the exporter traces with: random images of the tile's shapes (and its noise), not
    the tile itself, so that a value the tracer would freeze from the data (a Python
    number taken from a tensor) makes the check on the real tile fail instead of
    passing by construction."""
    gen = torch.Generator().manual_seed(12345)
    images = [torch.rand(a.shape, generator=gen) for a in inputs[:3]]
    return images + [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs[3:]]


def _agrees(out: np.ndarray, reference: np.ndarray) -> bool:
    return out.shape == reference.shape and float(np.abs(out - reference).max()) <= CHECK_TOLERANCE


class OrtRunner:
    """Sessions per input shape for a :class:`~.runtime.DeepModel` (module doc): None from
    :meth:`run` means "run it in eager PyTorch" (ORT off)."""

    def __init__(self, net: nn.Module, threads: int, max_shapes: int = 4, dynamic: bool = True):
        """``dynamic`` False: one export per shape (a network whose dynamic export fails,
        noisily: the tracer dumps its graph on stdout)."""
        self.net, self.threads, self.max_shapes = net, threads, max_shapes
        self.sessions: dict[tuple, OrtSession] = {}
        # one export for any tile size, where it checks out (None: not tried; False: failed)
        self.dynamic: Union[OrtSession, None, bool] = None if dynamic else False
        self.seen: dict[tuple, tuple] = {}  # shape -> (first tile's inputs, its eager output)
        self.enabled = True
        self.exports = 0

    def key(self, inputs: list[np.ndarray]) -> tuple:
        return tuple(a.shape for a in inputs)

    def run(self, inputs: list[np.ndarray], eager) -> Optional[np.ndarray]:
        """The network's output for ``inputs`` (float32 numpy, batch first) by ORT, or None.
        ``eager``: a callable giving the eager output of ``inputs``."""
        if not self.enabled:
            return None
        key = self.key(inputs)
        session = self.sessions.get(key)
        if session is None:
            first = self.seen.pop(key, None)
            if first is None:  # export only for a shape that comes back; keep this tile to check with
                out = eager()
                if len(self.seen) >= self.max_shapes:
                    self.seen.pop(next(iter(self.seen)))
                self.seen[key] = ([a.copy() for a in inputs], out)
                return out
            try:
                session = self._checked_session(inputs, first)
            except Exception as exc:  # noqa: BLE001 - any exporter/runtime failure: stay in PyTorch
                return self._disable(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            if session is None:
                return self._disable("its output differs from PyTorch's")
            if len(self.sessions) >= self.max_shapes:
                self.sessions.pop(next(iter(self.sessions)))
            self.sessions[key] = session
        return session(inputs)

    def _checked_session(self, inputs: list[np.ndarray], first: tuple) -> Optional[OrtSession]:
        """A session that gives PyTorch's output on ``first`` (a tile of this shape and its
        eager output): the shared one with dynamic height and width when it does (one
        export per model), else one exported for this shape; None when neither does."""
        if self.dynamic is None:
            try:
                self.dynamic = OrtSession(self.net, _stand_ins(inputs), self.threads, dynamic=True)
                self.exports += 1
            except Exception:  # noqa: BLE001 - a network the tracer cannot export with free sizes
                self.dynamic = False
        try:
            if self.dynamic and _agrees(self.dynamic(first[0]), first[1]):
                return self.dynamic
        except Exception:  # noqa: BLE001 - e.g. a padding branch traced for another shape
            pass
        static = OrtSession(self.net, _stand_ins(inputs), self.threads)
        self.exports += 1
        return static if _agrees(static(first[0]), first[1]) else None

    def _disable(self, why: str) -> None:
        log.warning("ONNX Runtime backend off for this model (%s); running it in PyTorch", why)
        self.enabled = False
        self.sessions.clear()
        self.seen.clear()
        self.dynamic = None
        return None
