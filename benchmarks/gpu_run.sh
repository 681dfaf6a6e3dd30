#!/usr/bin/env bash
# On the device machine: install hmlc and hmlc-chexpert from the working tree (without
# dependencies: the image has them, .gpu/wheels brings the rest), then run every GPU check.
# Results land in $OUT (the device tool brings them back) or benchmarks/out/gpu.
# Prepare with benchmarks/gpu_stage.sh; extra arguments go to gpu_checks.py.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
out=${OUT:-benchmarks/out/gpu}
mkdir -p "$out"
site=/tmp/hmlc-site
pipi=($py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --no-build-isolation --upgrade --target "$site")
if ! "${pipi[@]}" .gpu/wheels/*.whl . plugins/chexpert; then
  echo "gpu_run: could not build hmlc here; installing the wheels gpu_stage.sh built instead"
  "${pipi[@]}" .gpu/wheels/*.whl .gpu/own/*.whl || { echo "gpu_run: install failed"; exit 1; }
fi
export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
root=()
[ -d .gpu/chexpert ] && root=(--chexpert-root .gpu/chexpert)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/log.txt"
$py benchmarks/gpu_checks.py --out "$out" "${root[@]}" "$@" 2>&1 | tee -a "$out/log.txt"
exit "${PIPESTATUS[0]}"
