"""Training throughput of hmlc's trainer against a bare PyTorch loop, same process.

Both train the same backbone on the same synthetic images with the same batch
size; the ratio hmlc / bare shows the trainer's overhead (conditional masks,
policies, augmentation, logging). A second ratio compares CT stage 2 on
features computed once against re-running the frozen backbone every epoch.

    python benchmarks/trainer_throughput.py [--backbone tiny_cnn] [--size 64] [--n 2000] [--device auto]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from hmlc.config import load_config
from hmlc.engine.trainer import train
from hmlc.models import build_model, to_model_input
from hmlc.plugins import get_host


def bare_loop(backbone: str, size: int, n: int, batch: int, epochs: int, device: torch.device) -> float:
    """Images per second of a plain loop: DataLoader, forward, BCE, Adam."""
    from hmlc.data.synthetic import SyntheticConfig, generate_synthetic

    images, table = generate_synthetic(SyntheticConfig(n=n, image_size=size, seed=0))
    x_all = torch.from_numpy(images)[:, None]
    y_all = torch.nan_to_num(torch.from_numpy(table.codes()).clamp(min=0), nan=0.0)
    spec = get_host().backbone(backbone)
    torch.manual_seed(0)
    model = build_model(spec, y_all.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_all, y_all), batch_size=batch, shuffle=True)
    model.train()
    seen, t0 = 0, None
    for epoch in range(epochs + 1):  # epoch 0 warms up
        if epoch == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            seen = 0
        for x, y in loader:
            x = to_model_input(x.to(device), spec)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def hmlc_epochs(overrides: list[str]) -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(None, None, overrides + [f"output.dir={tmp}", "output.name=bench"])
        train(config)
        with (Path(tmp) / "bench" / "metrics.csv").open() as fh:
            return list(csv.DictReader(fh))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny_cnn")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="extra hmlc settings for the hmlc runs, e.g. train.precision=bf16 or train.compile=true",
    )
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    common = [
        f"model.backbone={args.backbone}", f"data.image_size={args.size}", f"data.params.n_train={args.n}",
        "data.params.n_valid=64", f"train.batch_size={args.batch}", "train.progress=false",
        "output.tensorboard=false", f"train.device={device}", *args.overrides,
    ]
    bare = bare_loop(args.backbone, args.size, args.n, args.batch, args.epochs, device)
    # Flat training, epoch 1 is warm-up; the rest are measured.
    rows = hmlc_epochs(common + ["train.method=flat", f"train.epochs={args.epochs + 1}"])
    ours = sum(float(r["train_images"]) for r in rows[1:]) / sum(float(r["epoch_seconds"]) for r in rows[1:])
    print(f"device {device}, backbone {args.backbone}, {args.size}px, {args.n} images, batch {args.batch}, "
          f"settings {args.overrides or 'default'}")
    print(f"bare PyTorch loop      {bare:10.0f} img/s")
    print(f"hmlc trainer (flat)    {ours:10.0f} img/s   ratio hmlc/bare = {ours / bare:.2f}")
    # CT stage 2: features computed once vs the frozen backbone run every epoch.
    stages_once = (
        '[{"name": "s2", "loss": "unconditional", "train": "head", "epochs": %d, "lr": 0.001, "features_once": true}]'
        % args.epochs
    )
    stages_live = stages_once.replace('"features_once": true', '"features_once": false')
    once = hmlc_epochs(common + [f"train.stages={stages_once}"])
    live = hmlc_epochs(common + [f"train.stages={stages_live}"])
    t_once = sum(float(r["epoch_seconds"]) + float(r["features_seconds"]) for r in once)
    t_live = sum(float(r["epoch_seconds"]) for r in live)
    print(f"stage 2, {args.epochs} epochs: features once {t_once:.2f}s (feature pass included), "
          f"backbone every epoch {t_live:.2f}s, ratio live/once = {t_live / max(t_once, 1e-9):.1f}")


if __name__ == "__main__":
    main()
