#!/usr/bin/env bash
# Issue #22 part 5 on a lent GPU, as one short run (a lent device gives ~15 minutes, the machine's start
# included): the paper FPDM and TruePose training steps at 512x352 in bf16, online vs from the feature store,
# per variant (benchmarks/bench_paper_step_gpu.py; docs/benchmarks.md). Rows print as they finish, so a
# run stopped by its timeout still reports what it measured. Prepare here with scripts/gpu/wheels.sh, then
#   device run: command "bash scripts/gpu/paper_steps.sh", carry [".whl"], timeout_s 560
set -uo pipefail
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
bench() { timeout "$1" python3 benchmarks/bench_paper_step_gpu.py "${@:2}" 2>&1 | tee -a "$OUT/steps.log"; }
# eager first (every method and mode, ~30 s a row), then the compiled store steps (~2 min a row, compile included)
bench 180 --methods fpdm truepose --modes online store --batch 8 --steps 5 --variants base --json "$OUT/eager.json"
bench 330 --methods fpdm truepose --modes store --batch 8 --steps 5 --variants channels_last+compile \
  --json "$OUT/compiled.json"
