#!/usr/bin/env bash
# All GPU checks of the trainer in one run, for a machine with one CUDA GPU
# (prepared on a CPU-only machine; not yet run on a GPU). Prints one block per check.
#   bash benchmarks/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
common=(--backbone resnet18 --size 224 --n 2048 --batch 64 --epochs 2 --device cuda)
$py -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
for settings in "train.precision=fp32 train.channels_last=false" "train.precision=fp32" \
                "train.precision=bf16" "train.precision=fp16" "train.precision=bf16 train.compile=true"; do
  sets=(); for s in $settings; do sets+=(--set "$s"); done
  timeout 600 $py benchmarks/trainer_throughput.py "${common[@]}" "${sets[@]}" 2>&1 | grep -E "^(device|bare|hmlc|stage)"
done
# DDP with NCCL: two processes need two GPUs; with one GPU this checks NCCL start-up and rank-0 writing.
n=$($py -c "import torch; print(min(2, torch.cuda.device_count()))")
tmp=$(mktemp -d)
timeout 600 $py -m torch.distributed.run --nproc_per_node="$n" -m hmlc train --out "$tmp" \
  --set output.name=ddp --set train.device=cuda --set train.progress=false --set data.params.n_train=512 \
  && $py -c "import json,sys; r=json.load(open('$tmp/ddp/results.json')); print('DDP world', r['world_size'], 'identical', r['replicas_identical'], 'AUC', r['final_mean_auc'])"
