"""``hmlc explain``: Grad-CAM maps per label, overlaid on the image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hmlc.data.synthetic import SYNTHETIC_HIERARCHY
from hmlc.data.preprocess import CenterCrop
from hmlc.engine.explain import (
    explanation_file_names,
    find_feature_layer,
    grad_cam,
    heatmap_on_original,
    overlay_heatmap,
)
from hmlc.models import build_model
from hmlc.plugins import get_host

from .conftest import assert_one_line_error

LABELS = list(SYNTHETIC_HIERARCHY.labels)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A non-square grayscale PNG with a bright disc."""
    img = np.full((45, 61), 30, dtype=np.uint8)
    cv2.circle(img, (40, 20), 9, 220, -1)
    path = tmp_path / "chest.png"
    cv2.imwrite(str(path), img)
    return path


def _picture(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img


def test_one_png_per_label_showing_the_whole_original_image(ct_run: Path, image: Path, hmlc, tmp_path: Path) -> None:
    out = tmp_path / "maps"
    code, stdout, err = hmlc("explain", "--checkpoint", ct_run, image, "--out", out)
    assert code == 0, err
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(LABELS)
    for label in LABELS:
        picture = _picture(out / f"chest_{label.replace(' ', '_')}.png")
        # The 61 x 45 image is shown enlarged (at least 400 pixels wide), with a colour bar beside it.
        assert picture.shape[1] >= 400 + 20 and picture.shape[0] >= 400 * 45 / 61
        assert not np.array_equal(picture[..., 0], picture[..., 2])  # coloured, not the gray image
        assert label in stdout


def test_a_cropping_preprocessor_maps_the_heatmap_back_onto_the_original(crop_run: Path, tmp_path: Path, hmlc) -> None:
    img = np.full((60, 90), 40, dtype=np.uint8)
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), img)
    out = tmp_path / "maps"
    code, _, err = hmlc("explain", "--checkpoint", crop_run, path, "--label", "Ring", "--out", out)
    assert code == 0, err
    picture = _picture(out / "wide_Ring.png")
    # The picture keeps the original's aspect (90 x 60), not the square crop's.
    image_part = picture[:, : int(picture.shape[1] * 0.8)]
    assert image_part.shape[1] / picture.shape[0] > 1.2


def test_the_heatmap_lies_over_the_preprocessors_window() -> None:
    original = np.zeros((60, 90), dtype=np.uint8)
    crop = CenterCrop(resize=48, crop=40)
    region = crop.region(original)
    top, left, h, w = region
    assert (top, left) == pytest.approx((4 * 60 / 48, 4 * 90 / 48)) and (h, w) == pytest.approx((50.0, 75.0))
    heat = heatmap_on_original(np.ones((5, 5), dtype=np.float32), original.shape, region)
    assert heat.shape == (60, 90)
    inside = heat[round(top) : round(top + h), round(left) : round(left + w)]
    assert inside.min() == pytest.approx(1.0) and heat.sum() == pytest.approx(inside.size)
    np.testing.assert_array_equal(heatmap_on_original(np.ones((3, 3)), (7, 9), None), np.ones((7, 9)))


def test_labels_that_would_share_a_file_name_get_distinct_names() -> None:
    labels = ["Fluid/Level", "Fluid Level", "Épanchement", "Ring"]
    names = explanation_file_names("img", labels, labels)
    assert len(set(names.values())) == len(labels)
    assert names["Ring"] == "img_Ring.png" and names["Épanchement"] == "img_Épanchement.png"
    assert names["Fluid/Level"].startswith("img_Fluid_Level-") and names["Fluid Level"].startswith("img_Fluid_Level-")
    # A label's file does not depend on which labels were asked for.
    assert explanation_file_names("img", ["Fluid Level"], labels) == {"Fluid Level": names["Fluid Level"]}


def test_explained_probabilities_are_those_predict_gives(ct_run: Path, image: Path, hmlc, tmp_path: Path) -> None:
    labels = ["--label", "Fluid Level", "--label", "Ring"]
    code, stdout, err = hmlc("explain", "--checkpoint", ct_run, image, *labels, "--out", tmp_path / "maps")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["chest_Fluid_Level.png", "chest_Ring.png"]
    assert hmlc("predict", "--checkpoint", ct_run, image, "--out", tmp_path / "p.csv")[0] == 0
    predicted = pd.read_csv(tmp_path / "p.csv").iloc[0]
    shown = {line.split("  ")[0]: line.split()[-2] for line in stdout.splitlines()[2:]}
    assert float(shown["Fluid Level"]) == pytest.approx(predicted["Fluid Level"], abs=6e-4)
    assert float(shown["Ring"]) == pytest.approx(predicted["Ring"], abs=6e-4)


def test_an_unknown_label_lists_the_labels(ct_run: Path, image: Path, hmlc, tmp_path: Path) -> None:
    code, _, err = hmlc("explain", "--checkpoint", ct_run, image, "--label", "Nodule", "--out", tmp_path / "m")
    err = assert_one_line_error(code, err)
    assert "Nodule" in err and all(label in err for label in LABELS)
    code, _, err = hmlc("explain", "--checkpoint", ct_run, tmp_path / "none.png", "--out", tmp_path / "m")
    assert "none.png" in assert_one_line_error(code, err)


class _MeanBrightness(nn.Module):
    """score = mean pixel value, through a 1x1 convolution with weight 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.features = nn.Sequential(self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def test_grad_cam_highlights_where_the_score_comes_from() -> None:
    model = _MeanBrightness().eval()
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 2:6, 9:13] = 1.0  # bright square, top right
    layer_name = find_feature_layer(model, x)
    assert layer_name == "features"
    (cam,) = grad_cam(model, model.get_submodule(layer_name), x, lambda out: out, [0])
    assert cam.shape == (16, 16) and cam.max() == pytest.approx(1.0)
    np.testing.assert_allclose(cam, x[0, 0].numpy())  # ReLU(sum_c w_c A_c) with w > 0, A = x


@pytest.mark.parametrize(("backbone", "layer"), [("tiny_cnn", "features"), ("resnet18", "layer4")])
def test_the_feature_map_is_the_last_convolutional_block(backbone: str, layer: str) -> None:
    spec = get_host().backbone(backbone)
    model = build_model(spec, 3).eval()
    x = torch.zeros(1, spec.in_chans, 64, 64)
    assert find_feature_layer(model.backbone, x) == layer


def test_overlay_keeps_the_image_size_and_paints_the_hot_spot_red() -> None:
    gray = np.full((30, 50), 128, dtype=np.uint8)
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[0, 3] = 1.0
    out = overlay_heatmap(gray, cam, alpha=0.5)
    assert out.shape == (30, 50, 3) and out.dtype == np.uint8
    b, g, r = out[0, 49].astype(int)
    assert r > b  # JET: hot is red
    b, g, r = out[29, 0].astype(int)
    assert b > r  # cold is blue
