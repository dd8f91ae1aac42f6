#!/usr/bin/env bash
# Every GPU measurement of the project in one run (under 8 minutes on one H100/H200), results to $OUT.
# Used through the workplace's device tool; on any CUDA machine: OUT=gpu_results bash benchmarks/gpu_suite.sh
# Packages missing on the machine can be carried as wheels in .whl/ (installed into /tmp/site).
set -uo pipefail
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__)"; } | tee "$OUT/gpu.txt"
# 1. No host synchronisation in a modulated step, checked by CUDA's own sync detector.
python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::FutureWarning \
  tests/core/test_host_sync.py 2>&1 | tail -5 | tee "$OUT/host_sync.txt"
# 2. Step time and peak memory: ViT-B/16 + BERT-base, batch 32, bf16 autocast.
python3 benchmarks/step_overhead.py --size base --amp --rounds 5 --steps 10 \
  --json "$OUT/step_overhead_base_amp.json" 2>&1 | grep -v Warning | tee "$OUT/step_overhead_base_amp.txt"
# 3. The small CPU-benchmark network on the GPU (overhead of the statistics when compute is tiny).
python3 benchmarks/step_overhead.py --size small --rounds 5 --steps 20 \
  --json "$OUT/step_overhead_small_cuda.json" 2>&1 | grep -v Warning | tee "$OUT/step_overhead_small_cuda.txt"
