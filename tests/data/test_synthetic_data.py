"""The synthetic dataset: hierarchy, determinism, label statistics, export."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hmlc.data.synthetic import (
    SYNTHETIC_HIERARCHY,
    SyntheticConfig,
    SyntheticDataset,
    export_synthetic,
    generate_synthetic,
    register_builtin_hierarchies,
)
from hmlc.errors import ConfigError, DataError

G = SYNTHETIC_HIERARCHY


def test_hierarchy_shape() -> None:
    found = {}
    register_builtin_hierarchies(lambda name, obj: found.setdefault(name, obj))
    assert found == {"synthetic": G}
    assert len(G) >= 8 and G.max_depth >= 2
    assert any(len(G.parents(label)) >= 2 for label in G.labels)
    assert any(not G.children(root) for root in G.roots)


def test_same_seed_same_bytes_other_seed_or_split_differs() -> None:
    cfg = SyntheticConfig(n=40, image_size=32, seed=5)
    images, table = generate_synthetic(cfg)
    images2, table2 = generate_synthetic(cfg)
    assert images.dtype == np.uint8 and images.shape == (40, 32, 32)
    assert images.tobytes() == images2.tobytes()
    pd.testing.assert_frame_equal(table.frame, table2.frame)
    other_images, other_table = generate_synthetic(SyntheticConfig(n=40, image_size=32, seed=6))
    assert not np.array_equal(images, other_images)
    assert not np.array_equal(table.codes(), other_table.codes(), equal_nan=True)
    valid_images, _ = generate_synthetic(SyntheticConfig(n=40, image_size=32, seed=5, split="valid"))
    assert not np.array_equal(images, valid_images)


def test_corruption_keeps_truth_and_images() -> None:
    cfg = SyntheticConfig(n=60, image_size=32, seed=1)
    images, noisy = generate_synthetic(cfg)
    clean_images, clean = generate_synthetic(cfg.clean())
    np.testing.assert_array_equal(images, clean_images)
    assert set(np.unique(clean.codes())) == {0.0, 1.0}
    assert noisy.frame["id"].tolist() == clean.frame["id"].tolist()


@pytest.fixture(scope="module")
def stats() -> tuple[np.ndarray, np.ndarray, SyntheticConfig]:
    cfg = SyntheticConfig(n=4000, image_size=16, seed=11)
    _, noisy = generate_synthetic(cfg)
    _, clean = generate_synthetic(cfg.clean())
    return clean.codes(), noisy.codes(), cfg


def test_truth_is_coherent_and_prevalences_in_range(stats) -> None:
    truth, _, _ = stats
    assert (G.coherence_violations(truth) == 0).all()
    prevalence = dict(zip(G.labels, truth.mean(axis=0)))
    assert all(0.02 <= p <= 0.45 for p in prevalence.values()), prevalence
    assert 0.02 <= prevalence["Fluid Level"] <= 0.045  # the rare leaf
    assert 0.3 <= prevalence["Mass"] <= 0.4
    assert prevalence["Line Through Mass"] > 0.02  # the two-parent label occurs


def test_uncertain_and_blank_rates_follow_the_config(stats) -> None:
    truth, codes, cfg = stats
    uncertain, blank = codes == -1, np.isnan(codes)
    # Parents are also blanked under positive children, so measure on the leaves.
    for label in G.leaves:
        k = G.index(label)
        assert abs(blank[:, k].mean() - cfg.blank_rate) < 0.03, label
        # Uncertain codes mostly hide positives (70 %), also for rare labels, ...
        assert 0.6 <= truth[uncertain[:, k], k].mean() <= 0.8, label
        # ... which get fewer of them, so that at most 60 % of their positives are hidden.
        prevalence = truth[:, k].mean()
        expected = min(cfg.uncertain_rate, 0.6 * prevalence / cfg.uncertain_positive_share)
        assert abs(uncertain[:, k].mean() - expected) < 0.02, label
    common = [G.index(label) for label in G.leaves if truth[:, G.index(label)].mean() > 0.15]
    assert len(common) >= 3
    assert np.allclose(uncertain[:, common].mean(axis=0), cfg.uncertain_rate, atol=0.02)
    assert truth[blank].mean() < 0.1  # blanks mostly hide negatives


def test_noise_flips_and_closure_has_work(stats) -> None:
    truth, codes, cfg = stats
    observed = ~np.isnan(codes) & (codes != -1)
    flipped = (codes != truth) & observed
    assert 0.005 < flipped.sum() / observed.sum() < 0.04
    assert (G.coherence_violations(codes) > 0).any()
    changed = G.closure(codes).changed
    assert changed["Mass"] > 100 and changed["Line"] > 100
    k, p = G.index("Cavity"), G.index("Mass")
    assert np.isnan(codes[codes[:, k] == 1, p]).mean() > 0.3


def test_patients_have_several_studies() -> None:
    _, table = generate_synthetic(SyntheticConfig(n=200, image_size=16, first_patient=7))
    frame = table.frame
    per_patient = frame.groupby("patient").size()
    assert per_patient.max() >= 3 and 1.4 < per_patient.mean() < 2.6
    assert frame["patient"].iloc[0] == "patient00007"
    assert frame["study"].is_unique and frame["id"].is_unique
    assert (frame["view"] == "frontal").all()


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="blank_rate"):
        SyntheticConfig(blank_rate=1.5)
    with pytest.raises(ConfigError, match="unknown label 'Nodule'"):
        SyntheticConfig(prevalence={"Nodule": 0.1})
    _, table = generate_synthetic(SyntheticConfig(n=300, image_size=16, prevalence={"Mass": 0.0}).clean())
    assert table.codes()[:, [G.index(d) for d in ("Mass", *G.descendants("Mass"))]].max() == 0


def test_dataset_reader_splits() -> None:
    reader = SyntheticDataset()
    params = {"n_train": 30, "n_valid": 12, "seed": 2}
    train = reader.load("train", root=None, params=params, image_size=24, labels=G.labels)
    valid = reader.load("valid", root=None, params=params, image_size=24, labels=G.labels)
    assert len(train.table) == 30 and len(valid.table) == 12
    assert train.images.read(0).shape == (24, 24)
    assert set(np.unique(valid.table.codes())) <= {0.0, 1.0}
    train_codes = train.table.codes()
    assert np.isnan(train_codes).any() and (train_codes == -1).any()
    assert not set(train.table.frame["patient"]) & set(valid.table.frame["patient"])
    subset = reader.load("valid", root=None, params=params, image_size=24, labels=["Ring", "Mass"])
    np.testing.assert_array_equal(subset.table.codes(), valid.table.codes()[:, [G.index("Ring"), G.index("Mass")]])
    clean = reader.load("train", root=None, params={**params, "uncertain_rate": 0.0, "blank_rate": 0.0,
                                                     "noise_rate": 0.0, "parent_blank_rate": 0.0},
                        image_size=24, labels=G.labels)
    assert set(np.unique(clean.table.codes())) <= {0.0, 1.0}


def test_dataset_reader_errors() -> None:
    reader = SyntheticDataset()
    with pytest.raises(DataError, match="no label.*'Nodule'"):
        reader.load("train", root=None, params={"n_train": 5}, image_size=16, labels=["Mass", "Nodule"])
    with pytest.raises(ConfigError, match=r"no parameter 'size'.*n_train"):
        reader.load("train", root=None, params={"size": 5}, image_size=16, labels=G.labels)
    with pytest.raises(DataError, match="splits are"):
        reader.load("test", root=None, params={}, image_size=16, labels=G.labels)


def test_export_layout(exported) -> None:
    out, summary = exported.out, exported.summary
    assert summary["splits"]["train"]["images"] == 32 and summary["splits"]["valid"]["images"] == 8
    assert set(summary["splits"]["train"]["positive"]) == set(G.labels)
    header = (out / "train.csv").read_text().splitlines()[0]
    assert header == "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(G.labels)
    for split in ("train", "valid"):
        frame = pd.read_csv(out / f"{split}.csv", dtype=str, keep_default_na=False)
        values = set(frame[list(G.labels)].to_numpy().ravel())
        assert values <= {"1.0", "0.0", "-1.0", ""}
        assert frame["Path"].str.fullmatch(rf"{out.name}/{split}/patient\d{{5}}/study\d+/view1_frontal\.png").all()
        assert (frame["Frontal/Lateral"] == "Frontal").all()
        first = cv2.imread(str(out.parent / frame["Path"].iloc[0]), cv2.IMREAD_UNCHANGED)
        assert first.shape == (32, 32) and first.dtype == np.uint8
    valid = pd.read_csv(out / "valid.csv")
    assert set(np.unique(valid[list(G.labels)].to_numpy())) <= {0.0, 1.0}
    assert json.loads((out / "hmlc_synthetic.json").read_text())["complete"] is True
    assert not list(out.glob(".*tmp"))


def test_export_refuses_foreign_folder_and_replaces_own(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        export_synthetic(foreign, n=10, image_size=16)
    assert (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "synth"
    export_synthetic(out, n=20, image_size=16)
    summary = export_synthetic(out, n=10, image_size=16, seed=4, blank_rate=0.0)
    assert summary["splits"]["train"]["images"] == 8
    assert len(list((out / "train").rglob("*.png"))) == 8  # the earlier, bigger export is gone
    assert len(pd.read_csv(out / "train.csv")) == 8
    with pytest.raises(ConfigError, match="unknown synthetic option"):
        export_synthetic(tmp_path / "x", n=10, image_size=16, colour=True)
    with pytest.raises(ConfigError, match="both need at least one"):
        export_synthetic(tmp_path / "y", n=2, valid_fraction=0.0)


def test_interrupted_export_leaves_no_csv_and_can_be_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "synth"
    export_synthetic(out, n=10, image_size=16)
    real = cv2.imencode
    calls = {"n": 0}

    def failing(ext, img, *args):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(ext, img, *args)

    monkeypatch.setattr(cv2, "imencode", failing)
    with pytest.raises(KeyboardInterrupt):
        export_synthetic(out, n=10, image_size=16, seed=1)
    assert not (out / "train.csv").exists() and not (out / "valid.csv").exists()
    monkeypatch.setattr(cv2, "imencode", real)
    export_synthetic(out, n=10, image_size=16, seed=1)
    assert len(pd.read_csv(out / "train.csv")) == 8


@pytest.mark.slow
def test_small_cnn_learns_the_synthetic_labels() -> None:
    """The default data is learnable: mean valid AUC well above chance after a short CPU run."""
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    reader = SyntheticDataset()
    params = {"n_train": 2000, "n_valid": 400}
    train = reader.load("train", root=None, params=params, image_size=64, labels=G.labels)
    valid = reader.load("valid", root=None, params=params, image_size=64, labels=G.labels)
    x = torch.from_numpy(train.images.array).float().div(255).unsqueeze(1)
    codes = G.closure(train.table.codes()).codes
    y = torch.from_numpy(np.where(np.isnan(codes), 0.0, np.abs(codes)).astype(np.float32))  # U-Ones
    layers: list[nn.Module] = []
    for c_in, c_out in ((1, 16), (16, 32), (32, 64), (64, 64)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, len(G)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(2):
        for b in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(net(x[b]), y[b]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        p = net(torch.from_numpy(valid.images.array).float().div(255).unsqueeze(1)).numpy()
    truth = valid.table.codes()
    aucs = [roc_auc_score(truth[:, k], p[:, k]) for k in range(len(G))]
    assert np.mean(aucs) > 0.75, dict(zip(G.labels, aucs))
