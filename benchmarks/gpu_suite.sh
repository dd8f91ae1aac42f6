#!/usr/bin/env bash
# Every GPU measurement of the project in one run, results to $OUT. Used through the workplace's device
# tool; on any CUDA machine: OUT=gpu_results bash benchmarks/gpu_suite.sh
# Packages missing on the machine can be carried as wheels in .whl/ (installed into /tmp/site).
# Writes five files: log.txt (everything printed, card and versions first), three step_overhead_*.json
# and loader_throughput_cuda.json. Each section has its own time limit so that a slow one cannot take the
# others' results with it (about 9 minutes in all at most).
set -uo pipefail
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
RUNS=$(mktemp -d)
exec > >(tee "$OUT/log.txt") 2>&1
section() { echo; echo "== $1 ($(date +%T))"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__)"

# 1. No host synchronisation in a modulated step, eager and compiled, checked by CUDA's own sync
#    detector; compiled vs eager statistics and gradients within 1e-6 on CUDA; the bootstrap on CUDA.
section "CUDA tests: host sync, compiled vs eager, bootstrap"
timeout 150 python3 -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::FutureWarning \
  tests/core/test_host_sync.py tests/core/test_compiled_step.py tests/metrics/test_bootstrap.py -k cuda -rf --tb=short 2>&1 \
  | tail -60

# 2. Step time, modulator time (CUDA events) and peak memory, eager vs compiled, at three sizes:
#    the demo network (launch-bound), the FairVision preset's encoders, ViT-B/16 + BERT-base.
section "step overhead: small (demo network), fp32"
timeout 80 python3 benchmarks/step_overhead.py --size small --arms default,default+compile --rounds 5 --steps 20 \
  --json "$OUT/step_overhead_small_cuda.json" 2>&1 | grep -v Warning
section "step overhead: fairvision (ResNet-18 fundus + slice-wise ResNet-18 OCT, 32 slices), bf16"
timeout 90 python3 benchmarks/step_overhead.py --size fairvision --amp --arms default,default+compile --rounds 5 \
  --steps 10 --json "$OUT/step_overhead_fairvision_amp.json" 2>&1 | grep -v Warning
section "step overhead: base (ViT-B/16 + BERT-base), bf16"
timeout 90 python3 benchmarks/step_overhead.py --size base --amp --arms default,default+compile --rounds 5 --steps 10 \
  --json "$OUT/step_overhead_base_amp.json" 2>&1 | grep -v Warning

# 3. The engine end to end on CUDA: `multifair train` with AMP (MultiFair: compile=auto compiles there)
#    and with another method, each audited on its test split.
section "multifair train on CUDA (demo-quick, amp): multifair, groupdro"
for method in multifair groupdro; do
  timeout 50 python3 -m monai_multifair train --config demo-quick --output "$RUNS/$method" \
    --set trainer.device=cuda --set trainer.amp=true --set method.name=$method 2>&1 | grep -v '^  /'
done

# 4. The FairVision loader against the preset's step on this card.
section "loader throughput vs the fairvision step on CUDA"
timeout 60 python3 benchmarks/loader_throughput.py --device cuda --files 32 --workers 0 4 8 --rounds 2 --steps 5 \
  --json "$OUT/loader_throughput_cuda.json" 2>&1 | grep -v Warning
section "done"
rm -rf "$RUNS"
