"""The HTML report opens in headless Chromium and shows its plots (skipped without Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmlc.evaluation.plots import ABOVE_COLOR, BELOW_COLOR, CURVE_COLOR

from .chexpert_files import run_hmlc, write_chexpert_files

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def screenshot(page: Path, target: Path, size: str = "1200,1600") -> None:
    """Chromium's headless screenshot of ``page`` (flags that work as root on a machine without network)."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={target}", f"--window-size={size}", page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )


def pixels_near(image: np.ndarray, color: str, tolerance: int = 30) -> int:
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image[..., :3].astype(int) - rgb).max(axis=-1) <= tolerance).sum())


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_html_renders_its_plots_in_headless_chromium(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path / "files", n=120)
    code, _, stderr = run_hmlc([
        "evaluate", "--predictions", str(files.predictions), "--labels", str(files.labels),
        "--radiologists", str(files.radiologists), "--labels-subset", "chexpert5", "--bootstrap", "50",
        "--out", str(tmp_path / "report"),
    ])
    assert code == 0, stderr
    # Moved away from its PNG files: the page must stand on its own.
    page = tmp_path / "alone.html"
    shutil.move(tmp_path / "report" / "report.html", page)
    shutil.rmtree(tmp_path / "report")
    shot = tmp_path / "shot.png"
    screenshot(page, shot)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape == (1600, 1200, 3)
    # The curves and reliability bars are the only blue on the page, the readers the only red and green.
    assert pixels_near(image, CURVE_COLOR) > 1500
    assert pixels_near(image, BELOW_COLOR) + pixels_near(image, ABOVE_COLOR) > 200
