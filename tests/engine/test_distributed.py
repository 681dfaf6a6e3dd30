"""DDP on the CPU: `torchrun --nproc_per_node=2 -m hmlc train` with gloo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import sets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_train(out: Path, set_args: list[str]) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=2 -m hmlc train --out OUT SET_ARGS` on the CPU, one thread per process."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}", "-m", "hmlc", "train", "--out", str(out), *set_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    proc = _torchrun_train(tmp_path, sets("output.name=ddp", "train.threads=1", "model.dropout=0.2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert results["world_size"] == 2
    assert results["replicas_identical"] is True
    assert results["completed"]
    # Rank 0 alone reports and writes: one table, one run directory.
    assert proc.stdout.count("mean AUC") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
    # Each rank trained on half of the (padded) data per epoch.
    rows = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    assert int(first["train_images"]) == 48


def _replica_worker(rank: int, port: int, perturb: bool, results) -> None:
    import torch
    import torch.distributed as dist

    from hmlc.engine.trainer import replicas_identical

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
        if perturb and rank == 1:
            with torch.no_grad():
                model[1].running_mean[2] += 1e-7  # a buffer, one element, the last bits
        results[rank] = replicas_identical(model, torch.device("cpu"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("perturb", [False, True])
def test_replica_check_sees_one_differing_buffer_element(perturb):
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_replica_worker, args=(_free_port(), perturb, results), nprocs=2, join=True)
        assert dict(results) == {0: not perturb, 1: not perturb}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["flat", "ct"])  # ct: stage 2 trains on features, rows chosen by what was skipped
def test_ranks_stay_in_step_when_unreadable_images_are_skipped(tmp_path, method):
    """data.on_bad_image=skip under DDP: a rank whose batch has nothing to train on (every image
    unreadable, or one left with BatchNorm) does not leave the other rank waiting in its backward;
    skipped.txt lists what every rank could not read."""
    from hmlc.cli.main import main

    data = tmp_path / "data"
    assert main(["synth", "export", str(data), "--n", "64", "--image-size", "16"]) == 0
    bad = sorted((data / "train").rglob("*.png"))[::2]  # half: most batches of 4 lose some, many all but one
    for image in bad:
        image.write_bytes(image.read_bytes()[:60])
    set_args: list[str] = []
    for item in (
        "output.name=skip", "train.threads=1", "data.dataset=csv", "hierarchy=synthetic", f"data.root={data}",
        "data.image_size=16", "data.on_bad_image=skip", "train.batch_size=4", f"train.method={method}",
        "train.epochs=2", "train.head_epochs=1", "train.progress=false", "train.deterministic=true",
        "output.tensorboard=false",
    ):
        set_args += ["--set", item]
    proc = _torchrun_train(tmp_path / "runs", set_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "skip"
    results = json.loads((run / "results.json").read_text())
    assert results["completed"] and results["replicas_identical"] is True
    assert "a training step is left out on every DDP rank" in proc.stderr
    listed = (run / "skipped.txt").read_text().splitlines()
    assert sorted(Path(p).resolve() for p in listed) == sorted(p.resolve() for p in bad)
