#!/usr/bin/env bash
# Device check for a lent GPU machine: ResNet-50 DepthNet bf16 training throughput and MFU,
# and the losses on the GPU. Writes JSON and a log under $OUT (or ./gpu_out).
# Usage (from the repo root): bash scripts/gpu_check.sh
set -uo pipefail
source "$(dirname "$0")/_device_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"
run() { echo "+ $*"; timeout 240 python3 -m depthsense_jax.cli "$@"; }
{
  for b in 32 64; do
    run speed model --config configs/base.py --config.model.dtype=bfloat16 --batch $b \
      --size 384 --repeats 10 --json "$OUT/r50_384_bf16_b$b.json"
  done
  run speed model --config configs/base.py --batch 32 --size 384 --repeats 10 \
    --json "$OUT/r50_384_f32_b32.json"
  run speed losses --batch 8 --size 384 --repeats 20 --json "$OUT/losses_gpu.json"
} 2>&1 | tee "$OUT/log.txt"
