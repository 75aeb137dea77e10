#!/usr/bin/env bash
# GPU readiness in one command (run it on a machine with an NVIDIA GPU): the step time of every model
# family's heaviest stage in fp32, bf16 and fp16 with train.channels_last and train.cudnn_benchmark on,
# then one DeepSpeed-over-NCCL Ray Train run; JSON to bench/results/gpu_check.json. Without CUDA it
# exits at once with status 6. Options and the choice of stages: bench/gpu_check.py (--help).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${VTON_PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$repo/bench/gpu_check.py" "$@"
