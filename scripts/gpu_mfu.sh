#!/usr/bin/env bash
# Short device check: ResNet-50 DepthNet 384 px bf16 training throughput and MFU at two
# batch sizes. Writes JSON and a log under $OUT (or ./gpu_out).
set -uo pipefail
source "$(dirname "$0")/_device_env.sh"
for b in 64 128; do
  timeout 200 python3 -m depthsense_jax.cli speed model --config configs/base.py \
    --config.model.dtype=bfloat16 --batch $b --size 384 --repeats 10 \
    --json "$OUT/r50_384_bf16_b$b.json"
done 2>&1 | tee "$OUT/log_mfu.txt"
