#!/usr/bin/env bash
# Checks of the GPU-only paths (fused PLAS kernels, Triton k-means) against the torch versions.
# Run on a machine with a CUDA GPU, CuPy and Triton, from the repository root:
#     bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import cupy, triton; print('cupy', cupy.__version__, 'triton', triton.__version__)"
exec python3 bench/gpu_check.py "$@"
