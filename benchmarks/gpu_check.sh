#!/usr/bin/env bash
# One check of the deep methods on a machine with an NVIDIA GPU (issue 18), in under
# five minutes: the CUDA tests, fose / ksdiff / e2e throughput in float16 and float32 on
# the Landsat-8 scene upsampled to SIZE x SIZE PAN (default 8000), and CUDA against the
# CPU on one tile; prints markdown tables. Saved as docs/gpu_check.md, they become
# docs/benchmarks.md's section "GPU check" at the next `make bench`:
#
#   benchmarks/gpu_check.sh [--size N] [--python PATH] [--dry-run] | tee docs/gpu_check.md
#
# --dry-run: no GPU needed; checks the CPU side (the Python runs on the CPU, a small scene).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZE=8000
PY=.venv/bin/python
DRY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --size) SIZE="$2"; shift 2 ;;
        --python) PY="$2"; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -x "$PY" ]] || { echo "gpu_check: no Python at $PY (make install, or --python PATH)" >&2; exit 2; }
export QT_QPA_PLATFORM=offscreen

if [[ $DRY -eq 0 ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "gpu_check: nvidia-smi not found: run this on a machine with an NVIDIA GPU and its driver" >&2
        exit 2
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_check: torch.cuda.is_available() is False: this PyTorch ($("$PY" -c 'import torch; print(torch.__version__)')) has no usable CUDA; install a CUDA build" >&2
        exit 2
    fi
fi

start=$SECONDS
echo "## CUDA tests"
# tests that only run with CUDA (skipped elsewhere) and the device / precision ones around them
timeout 150 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_models_runtime.py \
    "tests/test_models_weights.py::test_resolve_device" \
    "tests/test_models_weights.py::test_models_run_under_reduced_precision_autocast" \
    "tests/test_models_weights.py::test_deep_model_on_numpy_returns_float32_bands_by_pixels"

echo
echo "## Throughput and CUDA against the CPU"
if [[ $DRY -eq 1 ]]; then
    timeout 240 "$PY" benchmarks/gpu_check.py --dry-run
else
    timeout 240 "$PY" benchmarks/gpu_check.py --size "$SIZE"
fi
echo
echo "gpu_check: done in $((SECONDS - start)) s"
