#!/usr/bin/env bash
# The GPU check in one go (benchmarks/gpu.py): no network, nothing installed beyond the project; under 8 minutes
# on one H100/H200-class GPU. Pass --quick to run it on the CPU with the tiny model, --out FILE for the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python -m benchmarks.gpu "$@"
