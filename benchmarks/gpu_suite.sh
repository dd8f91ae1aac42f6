#!/usr/bin/env bash
# Every GPU measurement of the project in one run, results to $OUT. Used through the workplace's device
# tool; on any CUDA machine: OUT=gpu_results bash benchmarks/gpu_suite.sh
# Packages missing on the machine can be carried as wheels in .whl/ (installed into /tmp/site).
# The suite before issue 14 ran in under 8 minutes on one H200; the compiled arms and tests add one
# torch.compile (triton) warm-up per step_overhead size and two per compiled test, not yet timed on a
# GPU. Each section prints its start time.
set -uo pipefail
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
section() { echo "== $1 ($(date +%T))"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__)"; } | tee "$OUT/gpu.txt"
# 1. No host synchronisation in a modulated step, eager and compiled, checked by CUDA's own sync
#    detector; compiled vs eager statistics and gradients within 1e-6 on CUDA (issue 14).
section "CUDA tests: host sync, compiled vs eager"
python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::FutureWarning \
  tests/core/test_host_sync.py tests/core/test_compiled_step.py -k cuda 2>&1 | tail -8 | tee "$OUT/cuda_tests.txt"
# 2. Step time, modulator time (CUDA events) and peak memory, eager vs compiled, at three sizes:
#    the demo network (launch-bound), the FairVision preset's encoders, ViT-B/16 + BERT-base.
section "step overhead: small (demo network), fp32"
python3 benchmarks/step_overhead.py --size small --arms default,default+compile --rounds 5 --steps 20 \
  --json "$OUT/step_overhead_small_cuda.json" 2>&1 | grep -v Warning | tee "$OUT/step_overhead_small_cuda.txt"
section "step overhead: fairvision (ResNet-18 fundus + slice-wise ResNet-18 OCT, 32 slices), bf16"
python3 benchmarks/step_overhead.py --size fairvision --amp --arms default,default+compile --rounds 5 --steps 10 \
  --json "$OUT/step_overhead_fairvision_amp.json" 2>&1 | grep -v Warning | tee "$OUT/step_overhead_fairvision_amp.txt"
section "step overhead: base (ViT-B/16 + BERT-base), bf16"
python3 benchmarks/step_overhead.py --size base --amp --arms default,default+compile --rounds 5 --steps 10 \
  --json "$OUT/step_overhead_base_amp.json" 2>&1 | grep -v Warning | tee "$OUT/step_overhead_base_amp.txt"
section "done"
