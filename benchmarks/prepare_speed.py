"""``hmlc prepare`` against a bare single-process OpenCV loop doing the same work, same process.

Part 1, the 870 CheXpert sample images (636 train + 234 valid, both views) at
the paper's preprocessing (``chexpert/u-ones-ct-lsr``: template match,
resize 256, crop 224):

- the bare loop: read both CSVs, fit the template (mean of the centre crops
  of the frontal training images, as hmlc does), then for every image decode,
  resize, template-match, crop and write into one uint8 file per split;
- hmlc: :func:`hmlc.engine.experiment.build_caches` on the same settings
  (tables, checks, fit, one worker pool for both splits), modules imported
  beforehand. Ratio hmlc / bare; target 1.5 or less.

Part 2, throughput with 1 and 2 workers on about 4,000 images (the sample
repeated): :func:`hmlc.data.cache.build_cache_entries` with the fitted
template; ratio 2-worker / 1-worker throughput, target 1.7 or more (needs two
idle cores: the load average is printed before and after).

Part 3, the whole command as a user runs it, start-up included: ``python -m
hmlc prepare --preset chexpert/u-ones-ct-lsr ...`` in a new process against
the bare loop in a new process (``python prepare_speed.py --bare ...``, which
imports cv2 and numpy), wall time of each, on the 870 images. Ratio command /
bare; the part 1 target (1.5) applies. Also timed: the command again on the
complete cache (nothing left to do: start-up, tables and checks alone).

Without the CheXpert sample (``../shared/data/chexpert``) synthetic images of
the same size are generated into a temporary folder.

    python benchmarks/prepare_speed.py [--root DIR] [--repeat 3] [--images 4000] [--parts 1,2,3]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent.parent / "shared" / "data" / "chexpert" / "CheXpert-v1.0-small"
RESIZE, CROP, SIZE, FIT_IMAGES = 256, 224, 224, 2000


# ------------------------------------------------------------------ the bare loop
def _rows(root: Path, split: str) -> list[tuple[str, bool]]:
    with (root / f"{split}.csv").open(newline="") as fh:
        return [
            (str(root.parent / row["Path"]), row["Frontal/Lateral"] == "Frontal") for row in csv.DictReader(fh)
        ]


def _decode(path: str) -> np.ndarray:
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise SystemExit(f"cannot decode {path}")
    return img


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape == (size, size):
        return img
    h, w = img.shape
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR)


def bare_loop(root: Path, out: Path) -> float:
    """Seconds for: tables, template fit, decode + match + crop + write of every image of both splits."""
    start = time.perf_counter()
    splits = {name: _rows(root, name) for name in ("train", "valid")}
    frontal = [path for path, is_frontal in splits["train"] if is_frontal]
    n = min(len(frontal), FIT_IMAGES)
    top = (RESIZE - CROP) // 2
    total = np.zeros((CROP, CROP), dtype=np.float64)
    for i in np.linspace(0, len(frontal) - 1, n).round().astype(np.int64):
        total += _resize(_decode(frontal[i]), RESIZE)[top : top + CROP, top : top + CROP]
    template = (total / n).astype(np.float32)
    for name, rows in splits.items():
        with (out / f"{name}.u8").open("wb") as fh:
            for path, _ in rows:
                resized = _resize(_decode(path), RESIZE)
                scores = cv2.matchTemplate(resized.astype(np.float32), template, cv2.TM_CCOEFF_NORMED)
                y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
                fh.write(_resize(resized[y : y + CROP, x : x + CROP], SIZE).tobytes())
    return time.perf_counter() - start


PRESET, SETTINGS = "chexpert/u-ones-ct-lsr", ("data.params.views=both",)


def hmlc_prepare(root: Path, cache: Path, workers: int | None) -> float:
    """Seconds of hmlc's prepare (what `hmlc prepare` runs after parsing its arguments)."""
    from hmlc.config import load_config
    from hmlc.plugins import get_host
    from hmlc.engine.experiment import build_caches

    config = load_config(None, PRESET, [f"data.root={root}", *SETTINGS], presets=get_host().preset)
    start = time.perf_counter()
    builds = build_caches(config, cache_dir=cache, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    assert sum(b.processed for b in builds.values()) == sum(b.images for b in builds.values())
    return seconds


# ------------------------------------------------------------------ whole commands
def _wall(argv: list[str]) -> float:
    """Wall seconds of ``argv`` run in a new process; its output is dropped, a failure ends the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds


def bare_command(root: Path, out: Path) -> float:
    """Wall seconds of the bare loop in its own process: interpreter start, cv2 and numpy imports, the loop."""
    return _wall([sys.executable, str(Path(__file__).resolve()), "--bare", str(root), str(out)])


def hmlc_command(root: Path, cache: Path, workers: int | None) -> float:
    """Wall seconds of ``python -m hmlc prepare`` on the same settings as :func:`hmlc_prepare`."""
    sets = [arg for item in (f"data.root={root}", *SETTINGS) for arg in ("--set", item)]
    workers_args = ["--workers", str(workers)] if workers else []
    return _wall([sys.executable, "-m", "hmlc", "prepare", "--preset", PRESET, *sets, "--cache", str(cache), *workers_args])


# ------------------------------------------------------------------ 1 vs 2 workers
def throughput(root: Path, n_images: int, workers: int, tmp: Path) -> float:
    """Images per second of build_cache_entries on ``n_images`` (the sample repeated), fitted template."""
    from hmlc.data.cache import CacheJob, build_cache_entries
    from hmlc.data.images import FileImageSource
    from hmlc.data.preprocess import resolve_preprocessor

    paths = [path for name in ("train", "valid") for path, _ in _rows(root, name)]
    paths = (paths * (n_images // len(paths) + 1))[:n_images]
    preprocessor = resolve_preprocessor("template-match", {"resize": RESIZE, "crop": CROP})
    preprocessor.fit(FileImageSource([p for p, f in _rows(root, "train") if f], None))
    entry = tmp / f"w{workers}"
    shutil.rmtree(entry, ignore_errors=True)
    job = CacheJob("many", FileImageSource(paths, None), [str(i) for i in range(len(paths))], entry)
    start = time.perf_counter()
    build = build_cache_entries([job], preprocessor, SIZE, workers=workers, progress=False)["many"]
    return build.processed / (time.perf_counter() - start)


def _synthetic_sample(folder: Path) -> Path:
    """636 + 234 synthetic chest-like JPEGs of the sample's size, with the sample's CSV columns."""
    root = folder / "CheXpert-v1.0-small"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:390, 0:320]
    for split, n in (("train", 636), ("valid", 234)):
        (root / split).mkdir(parents=True)
        with (root / f"{split}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding"])
            for i in range(n):
                cy, cx = 195 + rng.integers(-20, 20), 160 + rng.integers(-20, 20)
                lungs = 200 * np.exp(-(((yy - cy) / 120.0) ** 2 + ((xx - cx) / 90.0) ** 2))
                img = np.clip(lungs + rng.normal(0, 12, lungs.shape), 0, 255).astype(np.uint8)
                rel = f"CheXpert-v1.0-small/{split}/patient{i:05d}/study1/view1_frontal.jpg"
                (folder / rel).parent.mkdir(parents=True)
                cv2.imwrite(str(folder / rel), img)
                writer.writerow([rel, "Female", 50, "Frontal", "AP", 1.0])
    return root


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    if sys.argv[1:2] == ["--bare"]:  # part 3's bare side, in its own process
        bare_loop(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="CheXpert-v1.0-small folder (default: the shared sample)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best counts (default 3)")
    parser.add_argument("--images", type=int, default=4000, help="images of part 2 (default 4000)")
    parser.add_argument("--workers", type=int, help="hmlc's workers in parts 1 and 3 (default: one per CPU)")
    parser.add_argument("--parts", default="1,2,3", help="comma-separated parts to run (default 1,2,3)")
    args = parser.parse_args()
    parts = {part.strip() for part in args.parts.split(",")}
    with tempfile.TemporaryDirectory(prefix="hmlc-prepare-speed-") as tmp_name:
        tmp = Path(tmp_name)
        root = args.root or (SAMPLE if (SAMPLE / "valid.csv").is_file() else None)
        if root is None:
            print("no CheXpert sample found: using synthetic images of the same size")
            root = _synthetic_sample(tmp / "data")
        (tmp / "bare").mkdir(exist_ok=True)
        n_images = sum(len(_rows(root, name)) for name in ("train", "valid"))
        print(f"{os.cpu_count()} CPUs, load average before: {_load()}")
        if "3" in parts:  # first, while this process has imported nothing of hmlc (not that it matters)
            bare, ours, again = [], [], []
            for _ in range(args.repeat):
                bare.append(bare_command(root, tmp / "bare"))
                shutil.rmtree(tmp / "cache", ignore_errors=True)
                ours.append(hmlc_command(root, tmp / "cache", args.workers))
                again.append(hmlc_command(root, tmp / "cache", args.workers))
            print(f"part 3, {n_images} images, whole commands: bare loop {min(bare):.2f} s, `hmlc prepare` "
                  f"{min(ours):.2f} s (workers {args.workers or os.cpu_count()}): ratio {min(ours) / min(bare):.2f} "
                  f"(target <= 1.5); with nothing left to do {min(again):.2f} s; load average {_load()}")
        import hmlc.engine.experiment  # noqa: F401 - imports are not what parts 1 and 2 measure

        if "1" in parts:
            bare, ours = [], []
            for _ in range(args.repeat):
                bare.append(bare_loop(root, tmp / "bare"))
                shutil.rmtree(tmp / "cache", ignore_errors=True)
                ours.append(hmlc_prepare(root, tmp / "cache", args.workers))
            print(f"part 1, {n_images} images: bare loop {min(bare):.2f} s, hmlc prepare {min(ours):.2f} s "
                  f"(workers {args.workers or os.cpu_count()}): ratio {min(ours) / min(bare):.2f} (target <= 1.5)")
        if "2" in parts:
            rates = {w: max(throughput(root, args.images, w, tmp) for _ in range(args.repeat)) for w in (1, 2)}
            print(f"part 2, {args.images} images: 1 worker {rates[1]:.0f} img/s, 2 workers {rates[2]:.0f} img/s: "
                  f"ratio {rates[2] / rates[1]:.2f} (target >= 1.7)")
        print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
