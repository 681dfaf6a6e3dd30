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


def bare_loop(
    backbone: str, size: int, n: int, batch: int, epochs: int, device: torch.device,
    precision: str = "fp32", channels_last: bool = False,
) -> float:
    """Images per second of a plain loop: DataLoader, forward, BCE, Adam.

    ``precision`` and ``channels_last`` resolve exactly as hmlc's settings do
    (``setup_runtime``), so both loops run the same kernels.
    """
    from hmlc.data.synthetic import SyntheticConfig, generate_synthetic
    from hmlc.engine.runtime import setup_runtime

    rt = setup_runtime(str(device), precision, channels_last)
    images, table = generate_synthetic(SyntheticConfig(n=n, image_size=size, seed=0))
    x_all = torch.from_numpy(images)[:, None]
    y_all = torch.nan_to_num(torch.from_numpy(table.codes()).clamp(min=0), nan=0.0)
    spec = get_host().backbone(backbone)
    torch.manual_seed(0)
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    model = build_model(spec, y_all.shape[1]).to(device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=rt.amp_dtype == torch.float16)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x_all, y_all), batch_size=batch, shuffle=True,
        pin_memory=device.type == "cuda",
    )
    model.train()
    seen, t0 = 0, 0.0
    for epoch in range(epochs + 1):  # epoch 0 warms up
        if epoch == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            seen = 0
        for x, y in loader:
            x = to_model_input(x.to(device, non_blocking=True), spec, memory_format=fmt)
            with rt.autocast():
                out = model(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y.to(device))
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
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


def measure(
    backbone: str = "tiny_cnn", size: int = 64, n: int = 2000, batch: int = 32, epochs: int = 3,
    device: str = "auto", overrides: list[str] | None = None, stage2: bool = True,
) -> dict[str, float | str]:
    """Bare loop and hmlc trainer img/s (and, with ``stage2``, the stage-2 feature-cache timings)."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    common = [
        f"model.backbone={backbone}", f"data.image_size={size}", f"data.params.n_train={n}",
        "data.params.n_valid=64", f"train.batch_size={batch}", "train.progress=false",
        "output.tensorboard=false", f"train.device={dev}", *(overrides or []),
    ]
    settings = load_config(None, None, common).train
    bare = bare_loop(backbone, size, n, batch, epochs, dev, settings.precision, settings.channels_last)
    # Flat training, epoch 1 is warm-up; the rest are measured.
    rows = hmlc_epochs(common + ["train.method=flat", f"train.epochs={epochs + 1}"])
    ours = sum(float(r["train_images"]) for r in rows[1:]) / sum(float(r["epoch_seconds"]) for r in rows[1:])
    result: dict[str, float | str] = {"device": str(dev), "bare_img_s": bare, "hmlc_img_s": ours, "ratio": ours / bare}
    if stage2:
        # CT stage 2: features computed once vs the frozen backbone run every epoch.
        stages_once = (
            '[{"name": "s2", "loss": "unconditional", "train": "head", "epochs": %d, "lr": 0.001, '
            '"features_once": true}]' % epochs
        )
        stages_live = stages_once.replace('"features_once": true', '"features_once": false')
        once = hmlc_epochs(common + [f"train.stages={stages_once}"])
        live = hmlc_epochs(common + [f"train.stages={stages_live}"])
        result["stage2_once_s"] = sum(float(r["epoch_seconds"]) + float(r["features_seconds"]) for r in once)
        result["stage2_live_s"] = sum(float(r["epoch_seconds"]) for r in live)
    return result


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
        help="extra hmlc settings for both loops, e.g. train.precision=bf16 or train.compile=true",
    )
    args = parser.parse_args()
    r = measure(args.backbone, args.size, args.n, args.batch, args.epochs, args.device, args.overrides)
    print(f"device {r['device']}, backbone {args.backbone}, {args.size}px, {args.n} images, batch {args.batch}, "
          f"settings {args.overrides or 'default'}")
    print(f"bare PyTorch loop      {r['bare_img_s']:10.0f} img/s   (same precision and memory format)")
    print(f"hmlc trainer (flat)    {r['hmlc_img_s']:10.0f} img/s   ratio hmlc/bare = {r['ratio']:.2f}")
    t_once, t_live = float(r["stage2_once_s"]), float(r["stage2_live_s"])
    print(f"stage 2, {args.epochs} epochs: features once {t_once:.2f}s (feature pass included), "
          f"backbone every epoch {t_live:.2f}s, ratio live/once = {t_live / max(t_once, 1e-9):.1f}")


if __name__ == "__main__":
    main()
