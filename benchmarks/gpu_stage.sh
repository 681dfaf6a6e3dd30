#!/usr/bin/env bash
# Before a device session, here: put in .gpu/ (git-ignored, never committed) what the device
# machine lacks. Its image has torch, timm, pandas, opencv, pluggy, networkx, scipy and the rest,
# but not pydantic; and nothing reaches the internet from there.
#   bash benchmarks/gpu_stage.sh [--chexpert DIR]    # DIR: a CheXpert folder to copy for the real-data section
#   bash benchmarks/gpu_stage.sh --clean             # removes .gpu/ (do this after the device session)
# Then, with the device tool: run(command="bash benchmarks/gpu_run.sh", carry=[".gpu"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--clean" ]; then rm -rf .gpu; echo "removed .gpu/"; exit 0; fi
mkdir -p .gpu/wheels
# The device's python3 is CPython 3.12 on x86-64 (see /work/.library/device/KINDS.md).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  -d .gpu/wheels pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
# hmlc and hmlc-chexpert as wheels too: gpu_run.sh installs from the working tree and falls
# back to these if the device cannot build them.
rm -rf .gpu/own && python3 -m pip wheel -q --no-deps -w .gpu/own . plugins/chexpert
if [ "${1:-}" = "--chexpert" ]; then
  src=${2:?--chexpert needs a folder}
  rm -rf .gpu/chexpert && mkdir -p .gpu/chexpert
  # Research-use data: copied only into this ignored folder, for the device run.
  cp -r "$src"/CheXpert-v1.0-small .gpu/chexpert/
fi
du -sh .gpu
