#!/usr/bin/env bash
# Wheels the lent GPU machine's image lacks for benchmarks/bench_paper_step_gpu.py (its Python 3.12 already has
# torch, transformers, lightning, safetensors, torchmetrics), into .whl/
# (git-ignored through .git/info/exclude). Run here, in the repository root, before scripts/gpu/paper_steps.sh.
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 importlib_metadata==8.7.0 zipp==3.23.0
ls -la .whl
