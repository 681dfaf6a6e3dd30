"""``hmlc benchmark --suite``: a suite registered by a plugin, run generically (no dataset-specific code):
selection on valid, one training per setting scored after each number of epochs, the final model scored
once, results.json/md/png, resume, and the errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

import hmlc.benchmark.suite as suite_module
import hmlc.engine.trainer as trainer_module
from hmlc.plugins import get_host, hookimpl

from .bench_data import run

#: A suite over the built-in synthetic feature vectors; a "dataset" is the number of training rows.
TOY = {
    "description": "synthetic feature vectors",
    "reference": {"name": "Paper", "source": "made up for the test", "seeds": 3},
    "datasets": {"120": {"reference": 0.5}, "160": {}},
    "methods": ["flat", "chmcnn"],
    "config": {"set": [
        "data.dataset=synthetic-vectors", "data.params.n_train={dataset}", "data.params.n_valid=80",
        "train.method={method}", "model.backbone=mlp", "model.backbone_params.layers=1", "train.batch_size=32",
        "train.lr=0.003", "train.progress=false", "output.tensorboard=false",
    ]},
    "grid": {"model.backbone_params.width": [8, 16], "train.epochs": [1, 3]},
    "protocol": {"selection": {"train_split": "train", "eval_split": "valid"},
                 "final": {"train_split": "train", "eval_split": "valid"}, "metric": "micro_auprc"},
}


class ToySuite:
    @hookimpl
    def hmlc_register_benchmark_suites(self, register: Callable[[str, Any], None]) -> None:
        register("toy", TOY)
        register("broken", {**TOY, "protocol": {**TOY["protocol"], "metric": "accuracy"}})


@pytest.fixture(autouse=True)
def _toy() -> None:
    get_host().pm.register(ToySuite(), name="toy-suite")


def _micro_auprc_of_predict(tmp_path: Path, capsys: Any, checkpoints: list[Path]) -> float:
    """Micro AU(PRC) on the toy's valid split (n_train 120) of `hmlc predict` with ``checkpoints``, by scikit-learn."""
    from hmlc.config import load_config
    from hmlc.data.datasets import read_split
    from hmlc.engine.experiment import resolve_hierarchy  # the labels, to read the truth in their order

    preds = tmp_path / "preds.csv"
    given = [arg for c in checkpoints for arg in ("--checkpoint", c)]
    code, _, err = run(["predict", *given, "--dataset", "synthetic-vectors", "--split", "valid",
                        "--set", "data.params.n_train=120", "--set", "data.params.n_valid=80", "--out", preds], capsys)
    assert code == 0, err
    reader = get_host().dataset("synthetic-vectors")
    graph = resolve_hierarchy(load_config(None, None, ["data.dataset=synthetic-vectors"]), reader)
    truth = read_split(reader, "valid", root=None, params={"n_train": 120, "n_valid": 80}, image_size=None,
                       labels=graph.labels).table.codes()
    p = pd.read_csv(preds)[list(graph.labels)].to_numpy()
    known = (truth == 0) | (truth == 1)
    return float(average_precision_score(truth[known], p[known]))


def test_suite_selects_on_valid_and_scores_the_final_model(tmp_path: Path, capsys: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[tuple[str, int | None]] = []
    real_train = trainer_module.train

    def counted(config: Any, *args: Any, **kwargs: Any) -> Any:
        trained.append((str(config.output.name), list(kwargs.get("pause_at", ()))))
        return real_train(config, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train", counted)
    out = tmp_path / "out"
    code, stdout, err = run(["benchmark", "--suite", "toy", "--datasets", "120", "--out", out], capsys)
    assert code == 0, err
    assert "[1/2] 120 flat seed 0: select width=8, 1 epochs" in err and "[2/2] 120 chmcnn seed 0: chose" in err
    # One training per width, to its end (3), paused after 1 epoch to be scored: one run per width.
    assert trained[:2] == [("select-width_8", [1]), ("select-width_16", [1])]
    assert trained[2] == ("final", []) and len(trained) == 6
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True and list(results["datasets"]) == ["120"]
    assert results["grid"] == {"model.backbone_params.width": [8, 16], "train.epochs": [1, 3]}
    where = out / "runs" / "120" / "flat" / "seed0"
    selection = {}
    for width in (8, 16):
        scores = json.loads((where / f"select-width_{width}.json").read_text())["scores"]
        assert set(scores) == {"1", "3"}
        selection.update({(width, int(e)): s["micro_auprc"] for e, s in scores.items()})
    best = max(selection, key=lambda k: (selection[k], -k[0], -k[1]))
    record = results["datasets"]["120"]["methods"]["flat"]["seeds"][0]
    assert record["chosen"] == {"setting": f"width={best[0]}", "overrides": [f"model.backbone_params.width={best[0]}"],
                                "epochs": best[1]}
    assert record["selection_score"] == pytest.approx(selection[best])
    # The final model (trained with the chosen setting) scored once, checked with `hmlc predict` and scikit-learn.
    predicted = _micro_auprc_of_predict(tmp_path, capsys, [where / "final" / "checkpoints" / "last"])
    assert record["micro_auprc"] == pytest.approx(predicted, abs=1e-9)
    assert (where / "final" / "config.yaml").read_text().count(f"width: {best[0]}") == 1
    md = (out / "results.md").read_text()
    assert "| 120 | 0.500 | " in md and f"{record['micro_auprc'] - 0.5:+.3f}" in md
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert "suite toy: 2 run(s) of 1 dataset(s)" in stdout
    # One seed: no ensemble, and no table of it.
    assert results["datasets"]["120"]["methods"]["flat"]["ensemble"] is None and "ensemble" not in md
    assert not (out / "runs" / "120" / "flat" / "ensemble.json").exists()


def test_several_seeds_are_also_scored_as_one_ensemble(tmp_path: Path, capsys: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    args = ["benchmark", "--suite", "toy", "--methods", "flat", "--seeds", "2", "--grid", "model.backbone_params.width=8",
            "--grid", "train.epochs=1,2", "--out", out]
    code, _, err = run(args, capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    flat = results["datasets"]["120"]["methods"]["flat"]
    ensemble = flat["ensemble"]
    assert ensemble["n_seeds"] == 2 and "120 flat: ensemble of 2 seeds: valid: micro-averaged AU(PRC)" in err
    # The ensemble is the mean of the two final models' probabilities (`hmlc predict` with both), scored once.
    finals = [out / "runs" / "120" / "flat" / f"seed{k}" / "final" / "checkpoints" / "last" for k in (0, 1)]
    assert ensemble["micro_auprc"] == pytest.approx(_micro_auprc_of_predict(tmp_path, capsys, finals), abs=1e-9)
    assert ensemble["micro_auprc"] not in {r["micro_auprc"] for r in flat["seeds"]}  # not one seed's score
    # Means over the datasets with a published figure (only "120"), for the table and for results.json.
    summary = results["summary"]
    assert summary["datasets"] == ["120"] and summary["reference"] == 0.5
    assert summary["methods"]["flat"] == {"mean": pytest.approx(flat["mean"]["micro_auprc"]),
                                          "ensemble": pytest.approx(ensemble["micro_auprc"])}
    md = (out / "results.md").read_text()
    assert "The ensemble of each method's 2 seeds" in md
    assert f"| 120 | 0.500 | {ensemble['micro_auprc']:.3f} | {ensemble['micro_auprc'] - 0.5:+.3f} |" in md
    assert md.count("| mean of the 1 with a figure | 0.500 |") == 2
    # Read back, not scored again; scored again once a seed's final model is not the one it was scored for.
    monkeypatch.setattr(suite_module, "_scored", lambda *a: pytest.fail("scored again"))
    code, _, err = run(args, capsys)
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["datasets"]["120"]["methods"]["flat"]["ensemble"] == ensemble
    stale = out / "runs" / "120" / "flat" / "ensemble.json"
    stale.write_text(stale.read_text().replace('"key": "', '"key": "x'))
    monkeypatch.undo()
    code, _, err = run(args, capsys)
    assert code == 0 and "ensemble of 2 seeds" in err, err
    assert json.loads(stale.read_text())["micro_auprc"] == pytest.approx(ensemble["micro_auprc"], abs=1e-12)


def test_interrupted_suite_continues_with_the_same_results(tmp_path: Path, capsys: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["benchmark", "--suite", "toy", "--datasets", "160", "--methods", "flat",
            "--grid", "model.backbone_params.width=8", "--grid", "train.epochs=1,2"]
    assert run([*args, "--out", tmp_path / "whole"], capsys)[0] == 0
    real_scored = suite_module._scored
    scored: list[str] = []

    def interrupted(checkpoint: Path, split: Any) -> Any:
        scored.append(checkpoint.parts[-3])
        if len(scored) == 2:
            raise KeyboardInterrupt
        return real_scored(checkpoint, split)

    monkeypatch.setattr(suite_module, "_scored", interrupted)
    out = tmp_path / "out"
    assert run([*args, "--out", out], capsys)[0] == 130
    assert json.loads((out / "results.json").read_text())["complete"] is False
    scored.clear()
    monkeypatch.setattr(suite_module, "_scored", lambda c, s: (scored.append(c.parts[-3]), real_scored(c, s))[1])
    code, _, err = run([*args, "--out", out], capsys)
    assert code == 0, err
    assert scored == ["select-width_8", "final"]  # the epoch-1 score is kept, not computed again
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())["datasets"]["160"]["methods"]["flat"]
    resumed = json.loads((out / "results.json").read_text())["datasets"]["160"]["methods"]["flat"]
    for key in ("micro_auprc", "macro_auprc", "chosen", "selection_score"):
        assert resumed["seeds"][0][key] == whole["seeds"][0][key]
    scored.clear()
    assert run([*args, "--out", out], capsys)[0] == 0 and scored == []  # everything done: nothing again


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--suite", "toi"], "unknown benchmark suite 'toi'; did you mean: toy"),
        (["--suite", "toy", "--datasets", "999"], "--datasets: 999 not in suite 'toy'; it has: 120, 160"),
        (["--suite", "toy", "--methods", "ct2"], "--methods: ct2 not in suite 'toy'; it has: flat, chmcnn"),
        (["--suite", "toy", "--seeds", "0"], "--seeds 0: give at least 1"),
        (["--suite", "toy", "--grid", "train.epochs=0,2"], "--grid train.epochs=0,2: give positive integers"),
        (["--suite", "toy", "--grid", "model.backbone_params.widht=3"], "widht"),
        (["--suite", "toy", "--data", "/nonexistent/hmc"], "--data /nonexistent/hmc is not a folder"),
        (["--suite", "broken"], "protocol.metric 'accuracy' is not one of micro_auprc"),
    ],
)
def test_suite_errors_before_anything_trains(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                                             argv: list[str], fragment: str) -> None:
    monkeypatch.setattr(trainer_module, "train", lambda *a, **k: pytest.fail("trained before the checks"))
    code, _, err = run(["benchmark", *argv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("hmlc: error: "), err
    assert fragment in err
    assert not (tmp_path / "out").exists()


def test_listed_with_the_registered_kinds(capsys: Any) -> None:
    code, out, _ = run(["list", "benchmark_suites"], capsys)
    assert code == 0 and "toy" in out and "synthetic feature vectors" in out


# ------------------------------------------------ --jobs: units in worker processes
JOBS_ARGS = ["benchmark", "--suite", "toy", "--grid", "model.backbone_params.width=8", "--grid", "train.epochs=1,2"]


def _numbers(results: dict[str, Any]) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    return {(d, m, r["seed"]): (r["micro_auprc"], r["macro_auprc"], r["mean_auc"], r["selection_score"], r["chosen"])
            for d, entry in results["datasets"].items() for m, runs in entry["methods"].items() for r in runs["seeds"]}


@pytest.mark.slow
def test_jobs_run_units_in_workers_with_the_numbers_of_one_job(tmp_path: Path, capsys: Any) -> None:
    code, _, err1 = run([*JOBS_ARGS, "--jobs", "1", "--out", tmp_path / "one"], capsys)
    assert code == 0, err1
    code, stdout, err2 = run([*JOBS_ARGS, "--jobs", "2", "--out", tmp_path / "two"], capsys)
    assert code == 0, err2
    one, two = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert two["complete"] is True and len(_numbers(two)) == 4
    assert _numbers(two) == _numbers(one)  # same seeds, same numbers, whichever process ran a unit
    # One line per finished unit; the trainers' epoch lines go to each unit's log, not to the terminal.
    finished = [line for line in err2.splitlines() if ": chose width=8" in line]
    assert len(finished) == 4 and all("done, " in line for line in finished)
    assert sorted(line.split("]")[0] for line in finished) == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert "epoch 1/2" not in err2 and "epoch 1/2" in err1
    assert "2 worker processes, 1 torch thread(s) each" in err2 or "2 worker processes" in err2
    log = tmp_path / "two" / "runs" / "160" / "chmcnn" / "seed0" / "log.txt"
    assert "[chmcnn] epoch 2/2" in log.read_text()
    assert "suite toy: 4 run(s) of 2 dataset(s)" in stdout
    # A second call reads everything back: no training, the same numbers.
    code, _, err3 = run([*JOBS_ARGS, "--jobs", "2", "--out", tmp_path / "two"], capsys)
    assert code == 0 and "trained earlier" not in err3
    assert err3.count(" (earlier)  (") == 4 and "4/4 done" in err3  # read back, and not counted in the clock's rate
    assert _numbers(json.loads((tmp_path / "two" / "results.json").read_text())) == _numbers(one)


_SCRIPT = """
import json, os, sys, time
from hmlc.cli.main import main
from hmlc.plugins import get_host, hookimpl

class ToySuite:
    @hookimpl
    def hmlc_register_benchmark_suites(self, register):
        register("toy", json.loads(sys.argv[1]))

if os.environ.get("TOY_HOLD"):  # also in the spawned workers, which import this file
    from hmlc.engine.interrupt import StopRequest
    from hmlc.engine.trainer import Trainer

    real_fit, real_requested, held = Trainer.fit, StopRequest.requested, {"on": False, "steps": 0}

    def fit(self, *args, **kwargs):
        held["on"] = str(self.config.data.params.get("n_train")) == os.environ["TOY_HOLD"]
        return real_fit(self, *args, **kwargs)

    def requested(self):  # the held dataset's training waits after its third step until it is told to stop
        if held["on"]:
            held["steps"] += 1
            while held["steps"] > 2 and self.signum is None:
                time.sleep(0.02)
        return real_requested(self)

    Trainer.fit, StopRequest.requested = fit, requested

if __name__ == "__main__":  # worker processes are spawned: they import this file, they must not run it
    get_host().pm.register(ToySuite(), name="toy-suite")
    sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_the_same_command_continues(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "toy_hmlc.py"
    script.write_text(_SCRIPT)
    out = tmp_path / "out"
    # Two units on two workers; dataset 160's training is held after its third step (whatever the machine's
    # speed), so the interrupt always finds it running, with a checkpoint of its first epoch written.
    argv = [sys.executable, str(script), json.dumps(TOY), *JOBS_ARGS, "--methods", "flat",
            "--jobs", "2", "--out", str(out)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "TOY_HOLD": "160"})
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if ": chose " in line:  # one unit finished: Ctrl-C, which reaches the whole process group
            os.killpg(proc.pid, signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, "".join(lines) + rest
    said = [line for line in rest.splitlines() if line.startswith("hmlc:")]
    assert len(said) == 1 and "run the same hmlc benchmark command to continue" in said[0], rest
    assert "Traceback" not in rest
    finished = json.loads((out / "results.json").read_text())
    assert finished["complete"] is False
    kept = {key: (out / "runs" / key[0] / key[1] / "seed0" / "final.json").stat().st_mtime_ns
            for key in _numbers(finished)}
    assert len(kept) == 1  # the unit that finished before the interrupt
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["complete"] is True and len(_numbers(resumed)) == 2
    # The unit that was stopped had written its checkpoint, and continued from it.
    (other,) = {("120", "flat"), ("160", "flat")} - set(k[:2] for k in kept)
    assert "continuing the training an earlier call left there" in (
        out / "runs" / other[0] / other[1] / "seed0" / "log.txt").read_text()
    for key, mtime in kept.items():  # finished units are read back, not done again
        assert (out / "runs" / key[0] / key[1] / "seed0" / "final.json").stat().st_mtime_ns == mtime
        assert _numbers(resumed)[key] == _numbers(finished)[key]


def test_a_worker_stopped_while_it_waits_for_a_unit_ends_quietly(tmp_path: Path, capfd: Any) -> None:
    # Ctrl-C makes the main process send SIGTERM to every worker; one that has just finished its unit is
    # waiting for the next: it ends without a traceback (CI once caught one printed from tasks.get()).
    import multiprocessing
    import os
    import signal
    import time

    ctx = multiprocessing.get_context("spawn")
    tasks, messages, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    suite = suite_module.resolve_suite("toy")
    request = suite_module.SuiteRequest(data=None, datasets=(), methods=(), seeds=1, grid={}, sets=(), jobs=2)
    worker = ctx.Process(target=suite_module._worker, args=(0, suite, {}, request, tmp_path, 1, tasks, messages, stop))
    worker.start()
    deadline = time.monotonic() + 60
    status = Path(f"/proc/{worker.pid}/status")
    if not status.exists():
        worker.kill()
        pytest.skip("needs /proc to see when the worker has its SIGTERM handler")
    while time.monotonic() < deadline:  # the worker's SIGTERM handler is in place (SigCgt bit 15)
        caught = int(next(line for line in status.read_text().splitlines() if line.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            break
        time.sleep(0.05)
    time.sleep(0.5)  # now in tasks.get(), the queue empty
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(timeout=30)
    assert worker.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--jobs", "0"], "--jobs 0: give 1 to"),
        (["--jobs", "100000"], "--jobs 100000: give 1 to"),
    ],
)
def test_jobs_errors(tmp_path: Path, capsys: Any, argv: list[str], fragment: str) -> None:
    code, _, err = run(["benchmark", "--suite", "toy", *argv, "--out", tmp_path / "out"], capsys)
    assert code == 2 and err.startswith("hmlc: error: ") and fragment in err, err
    assert not (tmp_path / "out").exists()


def test_jobs_times_threads_must_fit_the_cores(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite_module, "usable_cores", lambda: 2)
    code, _, err = run(["benchmark", "--suite", "toy", "--jobs", "2", "--set", "train.threads=2",
                        "--out", tmp_path / "out"], capsys)
    assert code == 2 and "--jobs 2 x train.threads=2 is more than the 2 CPU core(s)" in err, err


def test_a_dataset_can_search_its_own_values(tmp_path: Path, capsys: Any) -> None:
    own = {**TOY, "datasets": {"120": {"reference": 0.5, "grid": {"train.epochs": [2]}}, "160": {}}}
    get_host().pm.register(type("Own", (), {"hmlc_register_benchmark_suites": hookimpl(
        lambda self, register: register("own", own))})(), name="own-suite")
    code, _, err = run(["benchmark", "--suite", "own", "--datasets", "120", "--methods", "flat",
                        "--grid", "model.backbone_params.width=8", "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["grid"]["train.epochs"] == [1, 3] and results["datasets"]["120"]["grid"]["train.epochs"] == [2]
    assert results["datasets"]["120"]["methods"]["flat"]["seeds"][0]["chosen"]["epochs"] == 2
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| 120 | flat | 0 | width 8; epochs 2 |" in md
    assert "(grid: model.backbone_params.width: 8; train.epochs: 1, 3; each dataset's own grid in the second table)" in md
    bad = {**TOY, "datasets": {"120": {"grid": {"train.epochs": [0]}}}}
    with pytest.raises(Exception, match="dataset '120': grid train.epochs must list positive integers"):
        suite_module.suite_from_object("bad", bad)


def test_stored_scores_survive_a_new_setting_at_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A suite started before an upgrade that adds a configuration key (at its default) continues after it."""
    import hmlc.config

    from hmlc.config import load_config

    config = load_config(None, None, ["data.dataset=synthetic-vectors", "train.epochs=3", "train.lr=0.0007"])
    before = suite_module._comparable(config)
    assert before["train"] == {"epochs": 3, "lr": 0.0007}  # only what differs from hmlc's defaults
    real = hmlc.config.config_to_dict

    def upgraded(cfg: Any) -> dict[str, Any]:
        data = real(cfg)
        data["train"]["new_knob"] = "default"
        return data

    monkeypatch.setattr(hmlc.config, "config_to_dict", upgraded)
    assert suite_module._comparable(config) == before


@pytest.mark.parametrize("setting", ["train.checkpoint_every_s=60", "output.tensorboard=false",
                                     "train.progress=false", "output.dir=elsewhere"])
def test_how_a_run_is_saved_or_shown_does_not_invalidate_stored_scores_or_run_folders(setting: str) -> None:
    """Where a run writes, what it shows and how often it saves change nothing learned (the hmc preset gained
    train.checkpoint_every_s): stored suite scores and run folders (ablation, benchmark) stay valid."""
    from hmlc.config import NOT_LEARNED, config_to_dict, learning_settings, load_config

    assert setting.split("=")[0] in {f"{section}.{key}" for section, key in NOT_LEARNED}
    base = ["data.dataset=synthetic-vectors", "train.epochs=3"]
    before, after = (load_config(None, None, base + extra) for extra in ([], [setting]))
    assert config_to_dict(after) != config_to_dict(before)
    assert suite_module._comparable(after) == suite_module._comparable(before)
    data = config_to_dict(after)
    assert learning_settings(data) == learning_settings(config_to_dict(before))
    assert data == config_to_dict(after)  # the caller's dict is left as it was
    other = load_config(None, None, [*base, "train.lr=0.002"])  # a setting that does change what is learned
    assert suite_module._comparable(other) != suite_module._comparable(before)
    assert learning_settings(config_to_dict(other)) != learning_settings(config_to_dict(before))


def test_a_suite_with_only_its_datasets_grids_says_so(tmp_path: Path, capsys: Any) -> None:
    only = {**TOY, "grid": {}, "datasets": {"120": {"reference": 0.5, "grid": {"train.epochs": [1]}}}}
    get_host().pm.register(type("Only", (), {"hmlc_register_benchmark_suites": hookimpl(
        lambda self, register: register("only", only))})(), name="only-suite")
    code, _, err = run(["benchmark", "--suite", "only", "--methods", "flat", "--set", "model.backbone_params.width=8",
                        "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    md = (tmp_path / "out" / "results.md").read_text()
    assert "after training on train (each dataset's own grid in the second table);" in md and "grid: ;" not in md


def test_costliest_units_start_first_under_jobs() -> None:
    """A dataset's ``cost`` orders the work of the workers (longest first); other datasets keep their place after."""
    costed = {**TOY, "datasets": {"a": {"cost": 5}, "b": {}, "c": {"cost": 50.5}, "d": {"reference": 0.3}}}
    suite = suite_module.suite_from_object("costed", costed)
    assert dict(suite.costs) == {"a": 5.0, "c": 50.5}
    units = [suite_module._Unit(i, 8, d, m, 0) for i, (d, m) in enumerate(
        [(d, m) for d in "abcd" for m in ("flat", "chmcnn")], 1)]
    order = [(u.dataset, u.method) for u in suite_module.costliest_first(suite, units)]
    assert order == [("c", "flat"), ("c", "chmcnn"), ("a", "flat"), ("a", "chmcnn"),
                     ("b", "flat"), ("b", "chmcnn"), ("d", "flat"), ("d", "chmcnn")]
    for cost in (0, -1, "big", True, float("inf")):
        with pytest.raises(Exception, match="dataset 'a': 'cost' must be a positive number"):
            suite_module.suite_from_object("bad", {**TOY, "datasets": {"a": {"cost": cost}}})


def test_time_left_counts_the_workers_and_the_costs_of_the_units_left() -> None:
    """The estimate after each unit: what is left spread over the workers, each unit weighed by its dataset's cost."""
    unit = suite_module._Unit
    same = [unit(i, 4, "seq", "chmcnn", i - 1) for i in range(1, 5)]
    clock = suite_module._SuiteClock({"seq": 1714.0}, same, jobs=2)
    assert clock.clock(now=clock._began + 5).endswith("elapsed")  # nothing finished yet: no estimate
    t0 = clock._began
    clock.start(same[0], now=t0)
    clock.start(same[1], now=t0 + 1)
    clock.finish(same[0], fresh=True, now=t0 + 527)
    # Measured on seq_GO with --jobs 2: the other running unit ended 3 s later, the last two took 9 minutes
    # together (counting units done said 27 minutes).
    assert clock.left(now=t0 + 527) == pytest.approx(527 + 1, abs=2)
    clock.finish(same[1], fresh=True, now=t0 + 530)
    clock.start(same[2], now=t0 + 531)
    clock.start(same[3], now=t0 + 531)
    assert clock.left(now=t0 + 631) == pytest.approx(528.5 - 100, abs=2)
    clock.finish(same[2], fresh=True, now=t0 + 1050)
    assert clock.left(now=t0 + 1050) == pytest.approx(525 - 519, abs=1)  # one unit runs: its own remainder
    assert clock.left(now=t0 + 2000) == 0.0 and "left" not in clock.clock(now=t0 + 2000)

    # Unequal costs: a unit of a dataset a third as costly is expected to take a third of the time.
    mixed = [unit(1, 3, "big", "flat", 0), unit(2, 3, "small", "flat", 0), unit(3, 3, "plain", "flat", 0)]
    clock = suite_module._SuiteClock({"big": 300.0, "small": 100.0}, mixed, jobs=1)
    t0 = clock._began
    clock.start(mixed[0], now=t0)
    clock.finish(mixed[0], fresh=True, now=t0 + 600)  # 2 s per unit of cost
    assert clock.left(now=t0 + 600) == pytest.approx(2 * 100 + 2 * 200)  # "plain" has no cost: the mean, 200
    assert clock.clock(now=t0 + 600) == "10m00s elapsed, about 10m00s left"

    # A unit read back from an earlier call says nothing about the rate.
    clock = suite_module._SuiteClock({"big": 300.0}, mixed, jobs=1)
    clock.start(mixed[0], now=clock._began)
    clock.finish(mixed[0], fresh=False, now=clock._began + 1)
    assert clock.left(now=clock._began + 1) != clock.left(now=clock._began + 1)  # NaN


def test_time_left_expects_units_finished_before_to_be_read_back() -> None:
    """More seeds into a folder that holds seed 0: the seed-0 units (final scores on disk) cost nothing."""
    unit = suite_module._Unit
    units = [unit(1, 4, "d", "chmcnn", 1), unit(2, 4, "d", "chmcnn", 2), unit(3, 4, "d", "chmcnn", 0),
             unit(4, 4, "e", "chmcnn", 0)]
    clock = suite_module._SuiteClock({"d": 100.0, "e": 100.0}, units, jobs=2, finished_before=units[2:])
    t0 = clock._began
    clock.start(units[0], now=t0)
    clock.start(units[1], now=t0)
    clock.finish(units[0], fresh=True, now=t0 + 300)
    assert clock.left(now=t0 + 300) == pytest.approx(0.0)  # the other seed ends with it; seed 0s are read back
    clock.finish(units[1], fresh=True, now=t0 + 310)
    clock.start(units[2], now=t0 + 310)
    clock.finish(units[2], fresh=False, now=t0 + 311)
    clock.start(units[3], now=t0 + 311)  # its final.json was stale after all: trained again
    clock.finish(units[3], fresh=True, now=t0 + 611)
    assert clock._spent == pytest.approx(300 + 310 + 300)
