"""The HTML report opens in headless Chromium and shows its plots (skipped without Chromium)."""

from __future__ import annotations

import re
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


# Appended to a copy of the page: after loading, the body records how many images it has and how many
# did not decode (naturalWidth 0 is a broken image).
_COUNT_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.setAttribute("data-images", images.length);
  document.body.setAttribute("data-broken", images.filter(i => !(i.complete && i.naturalWidth > 0)).length);
  document.body.setAttribute("data-widths", images.map(i => i.naturalWidth).join(","));
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (apt-get install chromium)")
def test_every_figure_of_the_report_decodes_in_headless_chromium(tmp_path: Path) -> None:
    files = write_chexpert_files(tmp_path / "files", n=120)
    code, _, stderr = run_hmlc([
        "evaluate", "--predictions", str(files.predictions), "--labels", str(files.labels),
        "--radiologists", str(files.radiologists), "--bootstrap", "50", "--out", str(tmp_path / "report"),
    ])
    assert code == 0, stderr
    html = (tmp_path / "report" / "report.html").read_text()
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", _COUNT_IMAGES + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
            check=True, capture_output=True, text=True, timeout=120,
        ).stdout
    images = re.search(r'data-images="(\d+)"', dom)
    assert images is not None, dom[:500]
    # 14 ROC curves, the PR curves, calibration per label, the pooled reliability diagram
    assert int(images.group(1)) == 14 + 3
    assert re.search(r'data-broken="(\d+)"', dom).group(1) == "0", re.search(r'data-widths="([^"]*)"', dom)
    for alt in ("Precision-recall curves", "Reliability diagrams per label", "Reliability diagram (all labels pooled)"):
        assert f'alt="{alt}"' in html
    for section in ("Operating points", "Provenance", "sha256"):
        assert section in html
