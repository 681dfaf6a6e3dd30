"""Every GPU check of hmlc in one run: numerics, speed, compile, DDP, and the CheXpert wall times.

Prepared for the short device sessions (about 15 minutes a session, start-up
included): sections run from the most to the least needed, each one on its own
(a failure is printed and the next section runs), and a section that would
start past ``--budget-s`` is skipped. Results are printed as they come and
written to ``--out`` as ``gpu_checks.json`` and ``gpu_checks.md`` (the wall-time
table for docs/reproduce-chexpert.md).

    python benchmarks/gpu_checks.py --out benchmarks/out/gpu [--chexpert-root DIR]
    python benchmarks/gpu_checks.py --device cpu --smoke --out /tmp/x   # what the test runs

On the device machine, ``bash benchmarks/gpu_run.sh`` installs hmlc from the
working tree first (see docs/developing.md).

Sections:
  env         torch, the GPU, the plugins
  numerics    one training step per precision (fp32, bf16, fp16 with loss scaling):
              finite loss and gradients, logits against fp32; channels_last against
              the default layout in fp32
  backbones   train and inference img/s and peak memory of each paper backbone at
              its input size (random weights, batch 32, the trainer's precision)
  formats     train img/s of one backbone in fp32/bf16/fp16, contiguous and
              channels_last: what mixed precision and the memory format bring
  loader      img/s of the DataLoader reading a 224 px memory-mapped cache
  trainer     hmlc's trainer against a bare PyTorch loop, same process and settings
  chexpert    `hmlc prepare` + `hmlc train --preset chexpert/u-ones-ct-lsr` at the
              paper's settings on real images (only with --chexpert-root)
  compile     train.compile=true against eager, through the trainer
  ddp         the trainer under torchrun with NCCL (one process per GPU; world 1
              on a one-GPU machine still runs DDP, NCCL and the replica check)
  profile     the top kernels of a training step, and host time against device time
              (is the step launch-bound?)
  suite       the test suite without its slow tests, where every `train.device=auto`
              now means the GPU (not with --smoke: that run is itself a test)
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
PAPER_BACKBONES = ("densenet121", "densenet169", "densenet201", "inception_resnet_v2", "xception", "nasnetalarge")
#: CheXpert-v1.0 frontal images: training (train.csv) and the official validation set (valid.csv)
CHEXPERT_TRAIN_FRONTAL = 191_027
CHEXPERT_VALID_FRONTAL = 202
#: The paper's recipe: 5 epochs of stage 1; the presets add 3 head epochs on cached features
PAPER_EPOCHS, HEAD_EPOCHS, TTA = 5, 3, 10


class Budget:
    def __init__(self, seconds: float) -> None:
        self.t0 = time.perf_counter()
        self.seconds = seconds

    @property
    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)


def say(text: str) -> None:
    print(text, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trainer_module() -> Any:
    spec = importlib.util.spec_from_file_location("trainer_throughput", HERE / "trainer_throughput.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hmlc(*args: str, timeout: float, env: dict[str, str] | None = None) -> tuple[int, float, str]:
    """Run ``python -m hmlc ARGS``; returns (exit code, seconds, the last 2,000 characters of its output)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hmlc", *args], capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, **(env or {})},
        )
        out = (proc.stdout + proc.stderr)[-2000:]
        return proc.returncode, time.perf_counter() - t0, out
    except subprocess.TimeoutExpired as exc:
        return 124, time.perf_counter() - t0, f"timed out after {timeout:.0f}s: {exc}"


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- sections
def section_env(ctx: dict[str, Any]) -> dict[str, Any]:
    from hmlc import __version__
    from hmlc.plugins import get_host

    dev: torch.device = ctx["device"]
    info: dict[str, Any] = {
        "hmlc": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "device": str(dev),
        "plugins": sorted(p["name"] for p in get_host().plugins_info()),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(
            gpu=props.name, gpus=torch.cuda.device_count(), capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported(),
            cudnn=torch.backends.cudnn.version(), cuda=torch.version.cuda,
        )
    say("  " + ", ".join(f"{k} {v}" for k, v in info.items()))
    return info


def section_numerics(ctx: dict[str, Any]) -> dict[str, Any]:
    """A training step per precision, as the trainer runs it; channels_last against contiguous."""
    from hmlc.engine.runtime import setup_runtime
    from hmlc.models import build_model, to_model_input
    from hmlc.plugins import get_host

    dev: torch.device = ctx["device"]
    name, size = ctx["numerics_backbone"]
    spec = get_host().backbone(name)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 1, size, size), dtype=torch.uint8, generator=g).to(dev)
    y = torch.randint(0, 2, (8, 14), generator=g).float().to(dev)
    out: dict[str, Any] = {"backbone": name, "size": size}
    torch.manual_seed(0)
    base = build_model(spec, 14).to(dev).eval()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            ref = base(to_model_input(x, spec)).float()
            cl = base.to(memory_format=torch.channels_last)(
                to_model_input(x, spec, memory_format=torch.channels_last)
            ).float()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    out["channels_last_max_abs_diff"] = float((cl - ref).abs().max())
    scale = float(ref.abs().max()) or 1.0
    ok = out["channels_last_max_abs_diff"] <= 1e-3 * max(scale, 1.0)
    say(f"  channels_last vs contiguous (fp32, eval): max |diff| {out['channels_last_max_abs_diff']:.2e}")
    precisions = ["fp32", "bf16", "fp16"] if dev.type == "cuda" else ["fp32"]
    for precision in precisions:
        rt = setup_runtime(str(dev), precision, channels_last=True)
        torch.manual_seed(0)
        fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
        model = build_model(spec, 14).to(dev, memory_format=fmt)
        model.load_state_dict(base.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler(dev.type, enabled=rt.amp_dtype == torch.float16)
        losses = []
        model.train()
        for _ in range(4):
            # fp16: an overflowing first step is skipped by the scaler, which lowers its scale;
            # what must hold is that the steps end with finite gradients.
            loss, finite_grads = _train_step(model, spec, x, y, rt, fmt, opt, scaler, check_grads=True)
            losses.append(float(loss))
        model.load_state_dict(base.state_dict())
        model.eval()
        with torch.no_grad(), rt.autocast():
            diff = float((model(to_model_input(x, spec, memory_format=fmt)).float() - ref).abs().max())
        good = all(math.isfinite(v) for v in losses) and finite_grads and diff <= 0.05 * max(scale, 1.0)
        ok = ok and good
        out[precision] = {"losses": losses, "finite_grads": finite_grads, "eval_max_abs_diff_vs_fp32": diff, "ok": good}
        say(f"  {precision}: losses {', '.join(f'{v:.4f}' for v in losses)}, grads finite {finite_grads}, "
            f"eval logits vs fp32 max |diff| {diff:.3e} (|logit| up to {scale:.2f})  {'ok' if good else 'FAIL'}")
    out["ok"] = ok
    return out


def section_backbones(ctx: dict[str, Any]) -> dict[str, Any]:
    """Train and inference throughput of each backbone at its input size, as the trainer runs it."""
    from hmlc.engine.runtime import setup_runtime
    from hmlc.plugins import get_host

    dev: torch.device = ctx["device"]
    host = get_host()
    rt = setup_runtime(str(dev), ctx["precision"], channels_last=True)
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    steps, warmup, batch, eval_batch = ctx["steps"], ctx["warmup"], ctx["batch"], ctx["eval_batch"]
    results: dict[str, Any] = {"precision": str(rt.amp_dtype or "fp32"), "batch": batch, "eval_batch": eval_batch}
    for name in ctx["backbones"]:
        if ctx["budget"].left < 20:
            say(f"  {name}: skipped, out of time")
            continue
        try:
            spec = host.backbone(name)
            r = _backbone_speed(spec, ctx["size_override"] or spec.input_size, rt, fmt, steps, warmup, batch, eval_batch)
        except Exception as exc:  # noqa: BLE001 - one backbone failing must not lose the others
            say(f"  {name}: FAIL {type(exc).__name__}: {exc}")
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results["ok"] = False
            continue
        results[name] = r
        say(f"  {name:<20} {r['size']}px  train {r['train_img_s']:8.0f} img/s   inference {r['eval_img_s']:8.0f} img/s"
            f"   peak {r['peak_train_gib']:5.1f} GiB (batch {batch})")
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return results


def _backbone_speed(
    spec: Any, size: int, rt: Any, fmt: torch.memory_format, steps: int, warmup: int, batch: int, eval_batch: int
) -> dict[str, float]:
    from hmlc.models import to_model_input

    dev = rt.device
    model, opt, scaler, x, y = _training_setup(spec, size, rt, fmt, batch)
    xe = torch.randint(0, 256, (eval_batch, 1, size, size), dtype=torch.uint8, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def train_step() -> None:
        _train_step(model, spec, x, y, rt, fmt, opt, scaler)

    def eval_step() -> None:
        with torch.no_grad(), rt.autocast():
            model(to_model_input(xe, spec, memory_format=fmt))

    model.train()
    train_ips = _images_per_s(train_step, warmup, steps, batch, dev)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else math.nan
    model.eval()
    eval_ips = _images_per_s(eval_step, warmup, steps, eval_batch, dev)
    return {"size": size, "train_img_s": train_ips, "eval_img_s": eval_ips, "peak_train_gib": peak,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def _training_setup(spec: Any, size: int, rt: Any, fmt: torch.memory_format, batch: int) -> tuple[Any, ...]:
    """A freshly built 14-label model with its Adam and loss scaler, and one random batch (x uint8, y 0/1)."""
    from hmlc.models import build_model

    dev = rt.device
    torch.manual_seed(0)
    model = build_model(spec, 14).to(dev, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(dev.type, enabled=rt.amp_dtype == torch.float16)
    x = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, device=dev)
    y = torch.randint(0, 2, (batch, 14), device=dev).float()
    return model, opt, scaler, x, y


def _train_step(
    model: torch.nn.Module, spec: Any, x: torch.Tensor, y: torch.Tensor, rt: Any, fmt: torch.memory_format,
    opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, check_grads: bool = False,
) -> tuple[torch.Tensor, bool]:
    """One step as the trainer takes it: autocast forward, BCE in fp32, scaled backward, Adam."""
    from hmlc.models import to_model_input

    with rt.autocast():
        logits = model(to_model_input(x, spec, memory_format=fmt))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    finite = True
    if check_grads:
        scaler.unscale_(opt)
        finite = all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
    scaler.step(opt)
    scaler.update()
    return loss.detach(), finite


def _images_per_s(step: Callable[[], None], warmup: int, steps: int, batch: int, dev: torch.device) -> float:
    for _ in range(warmup):
        step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    return steps * batch / (time.perf_counter() - t0)


def section_formats(ctx: dict[str, Any]) -> dict[str, Any]:
    """One backbone's training throughput per precision and memory format."""
    from hmlc.engine.runtime import setup_runtime
    from hmlc.plugins import get_host

    dev: torch.device = ctx["device"]
    name, size = ctx["numerics_backbone"]
    spec = get_host().backbone(name)
    precisions = ["fp32", "bf16", "fp16"] if dev.type == "cuda" else ["fp32"]
    out: dict[str, Any] = {"backbone": name, "size": size, "batch": ctx["batch"]}
    for precision in precisions:
        for channels_last in (False, True) if dev.type == "cuda" else (False,):
            rt = setup_runtime(str(dev), precision, channels_last=channels_last)
            fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
            r = _backbone_speed(spec, size, rt, fmt, ctx["steps"], ctx["warmup"], ctx["batch"], ctx["batch"])
            key = f"{precision}{'_channels_last' if rt.channels_last else ''}"
            out[key] = r["train_img_s"]
            say(f"  {name} {size}px {key:<22} train {r['train_img_s']:8.0f} img/s")
    base = out.get("fp32")
    if base:
        say("  against fp32 contiguous: " + ", ".join(
            f"{k} {v / base:.2f}x" for k, v in out.items() if isinstance(v, float) and k != "fp32"
        ))
    return out


def section_profile(ctx: dict[str, Any]) -> dict[str, Any]:
    """Where a training step's time goes: top kernels, and host time against device time."""
    from torch.profiler import ProfilerActivity, profile

    from hmlc.engine.runtime import setup_runtime
    from hmlc.plugins import get_host

    dev: torch.device = ctx["device"]
    name, size = ctx["numerics_backbone"]
    spec = get_host().backbone(name)
    rt = setup_runtime(str(dev), ctx["precision"], channels_last=True)
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    batch = ctx["batch"]
    model, opt, scaler, x, y = _training_setup(spec, size, rt, fmt, batch)
    model.train()
    for _ in range(ctx["warmup"]):
        _train_step(model, spec, x, y, rt, fmt, opt, scaler)
    _sync(dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    steps = max(2, ctx["steps"] // 3)
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(steps):
            _train_step(model, spec, x, y, rt, fmt, opt, scaler)
        _sync(dev)
    wall = (time.perf_counter() - t0) / steps
    sort = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=15)
    say("  " + table.replace("\n", "\n  "))
    out: dict[str, Any] = {"backbone": name, "size": size, "batch": batch, "step_ms": wall * 1e3}
    if dev.type == "cuda":
        device_us = sum(e.self_device_time_total for e in prof.key_averages()) / steps
        out["device_busy_ms"] = device_us / 1e3
        out["device_busy_share"] = device_us / 1e3 / (wall * 1e3)
        say(f"  step {wall * 1e3:.1f} ms wall, kernels {device_us / 1e3:.1f} ms: the GPU is busy "
            f"{out['device_busy_share']:.0%} of the step (well under 100%: launch- or host-bound)")
    return out


def section_loader(ctx: dict[str, Any]) -> dict[str, Any]:
    """The trainer's DataLoader over a memory-mapped cache of 224 px images, into the device."""
    from torch.utils.data import DataLoader, RandomSampler

    from hmlc.config import load_config
    from hmlc.data.cache import MemmapImageSource
    from hmlc.data.images import ImageIndexDataset
    from hmlc.engine.experiment import build_caches

    dev: torch.device = ctx["device"]
    n, size = ctx["loader_images"], ctx["loader_size"]
    out: dict[str, Any] = {"images": n, "size": size}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, None, [f"data.params.n_train={n}", "data.params.n_valid=16", f"data.image_size={size}"])
        t0 = time.perf_counter()
        build = build_caches(cfg, cache_dir=tmp, splits=["train"], progress=False)["train"]
        out["cache_build_s"] = time.perf_counter() - t0
        source = MemmapImageSource(build.entry_dir)
        for workers in ctx["loader_workers"]:
            loader = DataLoader(
                ImageIndexDataset(source), batch_size=32, sampler=RandomSampler(range(n)), num_workers=workers,
                pin_memory=dev.type == "cuda",
            )
            seen = 0
            t0 = time.perf_counter()
            for x, _ in loader:
                x = x.to(dev, non_blocking=True)
                seen += len(x)
            _sync(dev)
            ips = seen / (time.perf_counter() - t0)
            out[f"workers_{workers}_img_s"] = ips
            say(f"  {size}px cache -> {dev.type}, {workers} workers: {ips:8.0f} img/s (worker start-up included)")
    return out


def section_trainer(ctx: dict[str, Any]) -> dict[str, Any]:
    bench = _trainer_module()
    name, size, n = ctx["trainer_setup"]
    r = bench.measure(name, size, n, ctx["batch"], 2, str(ctx["device"]), [f"train.precision={ctx['precision']}"])
    say(f"  {name} {size}px, {n} images: bare loop {r['bare_img_s']:.0f} img/s, hmlc trainer {r['hmlc_img_s']:.0f} "
        f"img/s, ratio {r['ratio']:.2f}; stage 2 features once {r['stage2_once_s']:.2f}s vs backbone every epoch "
        f"{r['stage2_live_s']:.2f}s")
    return r


def section_chexpert(ctx: dict[str, Any]) -> dict[str, Any]:
    """Real images, the paper's settings (DenseNet-121 at 224 px, 5 + 3 epochs), random weights."""
    root = ctx["chexpert_root"]
    dev: torch.device = ctx["device"]
    out: dict[str, Any] = {"root": str(root)}
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--preset", "chexpert/u-ones-ct-lsr", "--set", f"data.root={root}"]
        if ctx["smoke"]:  # the same commands at a size a CPU runs in seconds
            for item in ("model.backbone=tiny_cnn", "data.image_size=64", "data.preprocessor_params.resize=73",
                         "data.preprocessor_params.crop=64", "train.epochs=1", "train.head_epochs=1"):
                common += ["--set", item]
        rc, secs, log = _hmlc("prepare", *common, "--cache", f"{tmp}/cache", timeout=300)
        out["prepare_s"], out["prepare_rc"] = secs, rc
        say(f"  hmlc prepare: exit {rc}, {secs:.1f}s")
        if rc != 0:
            say("  " + log.replace("\n", "\n  "))
            out["ok"] = False
            return out
        rc, secs, log = _hmlc(
            "train", *common, "--out", tmp, "--set", "output.name=paper", "--set", "model.pretrained=false",
            "--set", f"data.cache_dir={tmp}/cache", "--set", f"train.device={dev}",
            "--set", f"train.precision={ctx['precision']}", "--set", "data.num_workers=4",
            timeout=max(60, ctx["budget"].left - 10),
        )
        out["train_s"], out["train_rc"] = secs, rc
        if rc != 0:
            say(f"  hmlc train: exit {rc}\n  " + log.replace("\n", "\n  "))
            out["ok"] = False
            return out
        rows = _metrics(Path(tmp) / "paper")
        results = json.loads((Path(tmp) / "paper" / "results.json").read_text())
        out["epochs"] = [{k: r[k] for k in ("stage", "epoch", "images_per_s", "epoch_seconds", "val_mean_auc")} for r in rows]
        out["final_mean_auc"] = results["final_mean_auc"]
        say(f"  hmlc train: {secs:.1f}s in all, competition-5 mean AUC {results['final_mean_auc']:.3f}")
        for r in rows:
            say(f"    [{r['stage']}] epoch {r['epoch']}: {float(r['images_per_s']):.0f} img/s, "
                f"{float(r['epoch_seconds']):.2f}s, features {float(r['features_seconds']):.2f}s")
    out["ok"] = True
    return out


def section_compile(ctx: dict[str, Any]) -> dict[str, Any]:
    """train.compile=true against eager through `hmlc train` (flat, 3 epochs: 1 compiles, 2-3 measured)."""
    name, size, n = ctx["compile_setup"]
    dev: torch.device = ctx["device"]
    out: dict[str, Any] = {"backbone": name, "size": size, "images": n}
    for compiled in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            rc, secs, log = _hmlc(
                "train", "--out", tmp, "--set", "output.name=c", "--set", f"model.backbone={name}",
                "--set", f"data.image_size={size}", "--set", f"data.params.n_train={n}", "--set", "train.method=flat",
                "--set", "train.epochs=3", "--set", f"train.device={dev}", "--set", f"train.compile={str(compiled).lower()}",
                "--set", f"train.precision={ctx['precision']}", "--set", "train.progress=false",
                timeout=max(60, ctx["budget"].left - 10),
            )
            key = "compiled" if compiled else "eager"
            if rc != 0:
                say(f"  {key}: exit {rc}\n  " + log.replace("\n", "\n  "))
                out[key] = {"rc": rc}
                out["ok"] = False
                return out
            rows = _metrics(Path(tmp) / "c")
            ips = sum(float(r["train_images"]) for r in rows[1:]) / sum(float(r["epoch_seconds"]) for r in rows[1:])
            out[key] = {"first_epoch_s": float(rows[0]["epoch_seconds"]), "img_s": ips, "command_s": secs,
                        "final_mean_auc": json.loads((Path(tmp) / "c" / "results.json").read_text())["final_mean_auc"]}
            say(f"  {key:<8} first epoch {float(rows[0]['epoch_seconds']):6.1f}s, then {ips:6.0f} img/s, "
                f"mean AUC {out[key]['final_mean_auc']:.3f}")
    out["speedup"] = out["compiled"]["img_s"] / out["eager"]["img_s"]
    out["ok"] = True
    say(f"  compiled/eager throughput {out['speedup']:.2f}")
    return out


def section_ddp(ctx: dict[str, Any]) -> dict[str, Any]:
    dev: torch.device = ctx["device"]
    nproc = ctx["ddp_nproc"] or torch.cuda.device_count()
    nproc = min(2, nproc)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
            "--master_port=29533", "-m", "hmlc", "train", "--out", tmp,
        ]
        for s in ("output.name=ddp", f"train.device={dev.type}", "train.progress=false", "data.params.n_train=512",
                  "train.epochs=2", "train.head_epochs=1", "model.dropout=0.2",
                  # skip: the ranks agree on every step in the runtime's gloo group beside NCCL's
                  "data.on_bad_image=skip"):
            cmd += ["--set", s]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=max(60, ctx["budget"].left - 5), env=env, check=False
        )
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            say(f"  torchrun exit {proc.returncode}\n  " + (proc.stdout + proc.stderr)[-2000:].replace("\n", "\n  "))
            return {"ok": False, "rc": proc.returncode, "nproc": nproc}
        r = json.loads((Path(tmp) / "ddp" / "results.json").read_text())
    ok = r["world_size"] == nproc and r["replicas_identical"] is True
    say(f"  {nproc} process(es), backend {'nccl' if dev.type == 'cuda' else 'gloo'}: world {r['world_size']}, "
        f"replicas identical {r['replicas_identical']}, mean AUC {r['final_mean_auc']:.3f}, {secs:.1f}s  "
        f"{'ok' if ok else 'FAIL'}")
    return {"ok": ok, "nproc": nproc, "world_size": r["world_size"], "replicas_identical": r["replicas_identical"],
            "final_mean_auc": r["final_mean_auc"], "seconds": secs}


def section_suite(ctx: dict[str, Any]) -> dict[str, Any]:
    """pytest (not slow) on this machine: the trainer, predictor and exporter tests then run on the GPU."""
    if ctx["smoke"]:
        say("  skipped with --smoke (the smoke run is part of the suite)")
        return {"skipped": True}
    root = HERE.parent
    workers = str(max(1, min(8, (os.cpu_count() or 2) // 2)))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers, "-m", "not slow",
           str(root / "tests"), str(root / "plugins" / "chexpert" / "tests")]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, check=False,
                              timeout=max(60, ctx["budget"].left + 60))
    except subprocess.TimeoutExpired:
        say("  timed out")
        return {"ok": False, "timed_out": True}
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
    say("  " + "\n  ".join(tail))
    return {"ok": proc.returncode == 0, "rc": proc.returncode, "seconds": time.perf_counter() - t0, "tail": tail}


SECTIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "env": section_env, "numerics": section_numerics, "backbones": section_backbones, "formats": section_formats,
    "loader": section_loader, "trainer": section_trainer, "chexpert": section_chexpert,
    "compile": section_compile, "ddp": section_ddp, "profile": section_profile, "suite": section_suite,
}


# ----------------------------------------------------------------------------- wall times
def wall_time_table(report: dict[str, Any]) -> str:
    """Markdown: expected wall time per step on this GPU, from the measured throughputs."""
    env = report["sections"].get("env", {}).get("result", {})
    bb = report["sections"].get("backbones", {}).get("result", {})
    loader = report["sections"].get("loader", {}).get("result", {})
    feed = max((v for k, v in loader.items() if k.startswith("workers_")), default=math.nan)
    layout = "channels_last, " if env.get("gpu") else ""
    lines = [
        (
            f"Measured with `python benchmarks/gpu_checks.py` on {env.get('gpu', env.get('device', '?'))}, "
            f"torch {env.get('torch', '?')}, {env.get('cpus', '?')} CPU cores, {bb.get('precision', '?')}, "
            f"{layout}batch {bb.get('batch', '?')} (inference {bb.get('eval_batch', '?')}), random weights."
        ),
        "",
        "Times are computed from the measured model throughput for CheXpert-v1.0's "
        f"{CHEXPERT_TRAIN_FRONTAL:,} frontal training images: a setting is {PAPER_EPOCHS} stage-1 epochs, "
        f"one validation pass per epoch over {CHEXPERT_VALID_FRONTAL} images, one feature pass for stage 2 "
        f"(its {HEAD_EPOCHS} head epochs on cached features take seconds), and prediction with "
        f"{TTA}-crop TTA on the validation images."
        + (
            f" The preprocessed cache fed {feed:,.0f} img/s ({loader['size']} px) to the device, so the data "
            "path is not the limit where that is above the train column."
            if math.isfinite(feed) else ""
        ),
        "",
        "| backbone | input | train img/s | inference img/s | peak GiB | one epoch | one setting | predict valid, TTA 10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    totals = {}
    for name in PAPER_BACKBONES:
        r = bb.get(name)
        if not r or "train_img_s" not in r:
            continue
        epoch = CHEXPERT_TRAIN_FRONTAL / r["train_img_s"]
        setting = (PAPER_EPOCHS * (epoch + CHEXPERT_VALID_FRONTAL / r["eval_img_s"])
                   + CHEXPERT_TRAIN_FRONTAL / r["eval_img_s"])
        totals[name] = setting
        predict = CHEXPERT_VALID_FRONTAL * TTA / r["eval_img_s"]
        lines.append(
            f"| {name} | {r['size']} | {r['train_img_s']:,.0f} | {r['eval_img_s']:,.0f} | {r['peak_train_gib']:.1f} "
            f"| {_hms(epoch)} | {_hms(setting)} | {predict:.1f} s |"
        )
    if "densenet121" in totals:
        lines += ["", f"Table 1 (ten settings on DenseNet-121): {_hms(10 * totals['densenet121'])}."]
    if len(totals) == len(PAPER_BACKBONES):
        lines.append(f"The six-backbone ensemble (one setting each): {_hms(sum(totals.values()))}.")
    return "\n".join(lines) + "\n"


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "gpu")
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip sections that would start later")
    parser.add_argument("--only", default=None, help="comma-separated sections (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--chexpert-root", type=Path, default=None, help="CheXpert folder for the real-data section")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few steps, for a CPU test of this script")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_checks: no CUDA device here; use --device cpu --smoke for a dry run", file=sys.stderr)
        return 2
    from hmlc.plugins import get_host

    have = {entry["name"] for entry in get_host().listing("backbones")}
    paper = [b for b in PAPER_BACKBONES if b in have]
    smoke = args.smoke
    ctx: dict[str, Any] = {
        "device": device, "precision": args.precision, "budget": Budget(args.budget_s),
        "backbones": (["tiny_cnn", "resnet18"] if smoke else paper or ["resnet18"]),
        "size_override": 32 if smoke else None,
        "steps": 2 if smoke else 30, "warmup": 1 if smoke else 8, "batch": 8 if smoke else 32,
        "eval_batch": 16 if smoke else 128,
        "numerics_backbone": ("tiny_cnn", 32) if smoke else (("densenet121" if paper else "resnet18"), 224),
        "loader_images": 64 if smoke else 4096, "loader_size": 32 if smoke else 224,
        "loader_workers": [0, 2] if smoke else [0, 4, 8],
        "trainer_setup": ("tiny_cnn", 32, 96) if smoke else (("densenet121" if paper else "resnet18"), 224, 1024),
        "compile_setup": ("tiny_cnn", 32, 96) if smoke else ("resnet18", 224, 1024),
        "chexpert_root": args.chexpert_root,
        "smoke": smoke,
        # torchrun with one process still runs DDP (see hmlc.engine.runtime): the smoke run covers that path
        "ddp_nproc": 1 if smoke else (None if device.type == "cuda" else 2),
    }
    names = [s for s in (args.only.split(",") if args.only else SECTIONS) if s]
    unknown = [s for s in names + [s for s in args.skip.split(",") if s] if s not in SECTIONS]
    if unknown:
        print(f"gpu_checks: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    names = [s for s in names if s not in args.skip.split(",")]
    if args.chexpert_root is None and "chexpert" in names:
        names.remove("chexpert")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv, "sections": {}}
    failed = []
    for name in names:
        if ctx["budget"].left <= 0 and name != "env":
            say(f"== {name}: skipped, the {args.budget_s:.0f}s budget is spent")
            report["sections"][name] = {"skipped": True}
            continue
        say(f"== {name}")
        t0 = time.perf_counter()
        try:
            result = SECTIONS[name](ctx)
            entry = {"ok": bool(result.get("ok", True)), "seconds": time.perf_counter() - t0, "result": result}
        except Exception as exc:  # noqa: BLE001 - a broken section must not stop the others
            tb = traceback.format_exc()
            say(f"  FAIL {type(exc).__name__}: {exc}\n" + "\n".join("  " + ln for ln in tb.splitlines()[-8:]))
            entry = {"ok": False, "seconds": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": tb}
        if not entry["ok"]:
            failed.append(name)
        report["sections"][name] = entry
        say(f"   ({entry['seconds']:.1f}s, {'ok' if entry['ok'] else 'FAILED'})")
        # Written after every section, so a run cut short still leaves its results.
        (args.out / "gpu_checks.json").write_text(json.dumps(report, indent=2, default=str))
    table = wall_time_table(report)
    (args.out / "gpu_checks.md").write_text(table)
    say("\n" + table)
    say(f"failed sections: {', '.join(failed)}" if failed else "all sections passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
