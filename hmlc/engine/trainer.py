"""The trainer: stages (flat, or conditional training in two stages), checkpoints, resume, DDP."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hmlc import __version__
from hmlc.config import ExperimentConfig, StageConfig, config_to_dict, config_to_yaml, load_config
from hmlc.engine.experiment import ExperimentData, prepare_experiment
from hmlc.engine.inference import binary_logits, forward_images, outputs_to_probabilities
from hmlc.engine.interrupt import Interrupted, StopRequest, ignore_stop_signals
from hmlc.engine.rundir import MetricsLog, RunDirectory, write_json
from hmlc.engine.runtime import Runtime, every_rank, seed_everything, setup_runtime, teardown_runtime, union_over_ranks
from hmlc.errors import CheckpointError, ConfigError, DataError
from hmlc.evaluation import LabelAUC, constant_prediction_labels, mean_auc, per_label_auc
from hmlc.faults import fault_point
from hmlc.progress import Progress

__all__ = [
    "Trainer", "TrainResult", "EpochPosition", "train", "output_kind", "check_stages", "random_hflip",
    "replicas_identical",
]


def output_kind(stage: StageConfig) -> str:
    """What a stage's outputs mean: 'unconditional' for plain BCE, 'max-constraint' for MCLoss, else 'conditional'."""
    if stage.loss == "mcloss":
        return "max-constraint"
    return "unconditional" if stage.loss == "bce" else "conditional"


def check_stages(stages: list[StageConfig], multiclass: bool) -> None:
    """Refuse stage settings the data cannot train (before the run directory exists)."""
    if multiclass and any(stage.loss == "mcloss" for stage in stages):
        raise ConfigError(
            "train.method=chmcnn (loss 'mcloss') needs one sigmoid output per label, but the policy "
            "u-multiclass gives 3-way heads; choose another uncertainty policy or another method"
        )


@dataclass
class TrainResult:
    run_dir: Path
    labels: tuple[str, ...]
    final: list[LabelAUC]
    final_mean: float
    best_mean: float
    best_checkpoint: Path | None
    completed: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The labels the means are taken over (evaluation.labels); None: every label with both classes.
    mean_labels: tuple[str, ...] | None = None


@dataclass
class EpochPosition:
    """How far training got inside an epoch: what a checkpoint needs to continue it exactly."""

    #: Batches drawn from the sampler (one whose images were all unreadable counts, with no step).
    batches: int = 0
    #: Optimizer steps, images trained on and the sum of their losses (float64).
    steps: int = 0
    n_images: int = 0
    loss_sum: float = 0.0
    seconds: float = 0.0
    #: State of the generator of the epoch's flips.
    generator_state: torch.Tensor | None = None
    #: Whether the epoch stopped early (a stop was requested).
    stopped: bool = False


class Trainer:
    """Runs the configured stages; rank 0 logs and writes."""

    def __init__(
        self, config: ExperimentConfig, run: RunDirectory, runtime: Runtime, data: ExperimentData
    ) -> None:
        from hmlc.plugins import get_host

        self.config = config
        self.run = run
        self.rt = runtime
        self.data = data
        #: Indices of training images skipped as unreadable (data.on_bad_image=skip).
        self.skipped: set[int] = set()
        self._told_single = False  # said once that a batch of one sample is not trained on
        self._told_rank_left_out = False  # said once that a step was left out for another rank's batch
        self.graph = data.graph
        self.stages = config.train.resolved_stages()
        self.spec = get_host().backbone(config.model.backbone)
        seed_everything(config.seed)
        from hmlc.models import build_model

        #: Feature vectors: the training vectors on the device, standardised once, and the step to model input.
        self.vectors = data.input_kind == "features"
        self._unit = "vec" if self.vectors else "img"  # what the rates count
        self._train_vectors: torch.Tensor | None = None
        self._standardize: nn.Module | None = None
        if self.vectors:
            from hmlc.models import StandardizeFeatures

            state = data.source.state()
            self._standardize = StandardizeFeatures(state["mean"], state["std"]).to(runtime.device)
            with torch.no_grad():  # elementwise: the same floats as standardising each batch
                self._train_vectors = self._standardize(
                    torch.from_numpy(np.ascontiguousarray(data.train.images.array())).to(runtime.device)
                )
        self.model: nn.Module = build_model(
            self.spec,
            len(self.graph),
            multiclass=data.multiclass,
            pretrained=config.model.pretrained,
            weights_path=str(config.model.weights) if config.model.weights else None,
            dropout=config.model.dropout,
            backbone_params=config.model.backbone_params,
            input_dim=data.train.images.dim if self.vectors else None,
        ).to(runtime.device)
        if runtime.channels_last and not self.vectors:
            self.model = self.model.to(memory_format=torch.channels_last)
        #: The labels validation means are taken over (None: every label with both classes).
        self.mean_labels = _mean_labels(config.evaluation.labels, self.graph.labels, data.score_exclude)
        self.best_mean = -math.inf
        #: Labels the last validation predicted one constant for (the model learned nothing of them).
        self.constant_labels: list[str] = []
        self.progress = {"stage": 0, "epoch": 0}  # next stage index, epochs done in it
        self.history: list[dict[str, Any]] = []
        self.log = (
            MetricsLog(run.path / "metrics.csv", run.path / "tensorboard" if config.output.tensorboard else None)
            if runtime.is_main
            else None
        )
        self._optimizer: torch.optim.Optimizer | None = None
        self._scaler = torch.amp.GradScaler(
            runtime.device.type, enabled=runtime.amp_dtype == torch.float16 and runtime.device.type == "cuda"
        )
        self._resume_optimizer: dict[str, Any] | None = None
        #: Where an interrupted epoch stopped (from the checkpoint resumed), and the stop request of fit().
        self._resume_position: EpochPosition | None = None
        self._stop: StopRequest | None = None
        #: Indices of validation images skipped as unreadable (data.on_bad_image=skip).
        self.valid_skipped: set[int] = set()
        self._wrapped: tuple[tuple[int, bool], nn.Module] | None = None
        #: The last epoch's encoded labels, reused while they cannot change (see _epoch_labels).
        self._labels_cache: tuple[tuple[int, int], tuple[np.ndarray, torch.Tensor, torch.Tensor]] | None = None

    # ------------------------------------------------------------- helpers
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        from hmlc.models import to_model_input

        if self._standardize is not None:
            return self._standardize(x)
        x = to_model_input(x, self.spec)
        if self.rt.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _flip(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_hflip(x, generator) if self.config.data.augment and not self.vectors else x

    def _loss(self, stage: StageConfig, out: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        from hmlc.chain_rule import masked_bce_with_logits, multiclass_ce, unconditional_bce

        out = out.float()
        if stage.loss == "mcloss":
            from hmlc.max_constraint import mc_loss

            return mc_loss(out, t, w, self.graph)
        if stage.loss == "unconditional":
            if self.data.multiclass:
                w = w * (t != 2)
                t = (t == 1).float()
            return unconditional_bce(binary_logits(out, self.data.multiclass), t, w, self.graph, self.config.train.combine)
        if self.data.multiclass:
            return multiclass_ce(out, t, w)
        return masked_bce_with_logits(out, t, w)

    def _stage_weights(self, stage: StageConfig, weights: np.ndarray) -> np.ndarray:
        if stage.loss == "conditional" or stage.subset == "conditional":
            from hmlc.conditional import conditional_mask

            return weights * conditional_mask(self.graph, self.data.train.codes)
        return weights

    def _sampler(self, stage_index: int, contributes: np.ndarray) -> Any:
        from hmlc.conditional import ConditionalSubsetSampler

        return ConditionalSubsetSampler(
            contributes,
            shuffle=True,
            seed=self.config.seed * 1000 + stage_index,
            num_replicas=self.rt.world_size,
            rank=self.rt.rank,
        )

    def _generator(self, stage_index: int, epoch: int) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed((self.config.seed * 1_000_003 + stage_index * 10_007 + epoch) % 2**63)
        return g

    def _metadata(self, stage: StageConfig, val: list[LabelAUC] | None) -> dict[str, Any]:
        cfg = self.config
        return {
            "hmlc_version": __version__,
            "labels": list(self.graph.labels),
            "hierarchy": self.graph.to_dict(),
            "hierarchy_name": self.graph.name,
            "hierarchy_hash": self.graph.content_hash,
            "backbone": cfg.model.backbone,
            "num_features": self.spec.num_features,
            "in_chans": self.spec.in_chans,
            "normalization": {"mean": list(self.spec.mean), "std": list(self.spec.std)},
            "image_size": cfg.data.image_size,
            "preprocessing": {
                "preprocessor": cfg.data.preprocessor,
                "params": cfg.data.preprocessor_params,
                "fingerprint": self.data.preprocessor.fingerprint() if self.data.preprocessor else None,
            },
            "policy": cfg.policy.model_dump(mode="json"),
            "multiclass": self.data.multiclass,
            "stage": stage.name,
            "output": output_kind(stage),
            "combine": cfg.train.combine,
            "dropout": cfg.model.dropout,
            "validation": None if val is None else {a.label: a.auc for a in val},
            "validation_mean_auc": None if val is None else mean_auc(val, self.mean_labels),
            "config": config_to_dict(cfg),
            **self._input_metadata(),
        }

    def _input_metadata(self) -> dict[str, Any]:
        """What the inputs are (images or feature vectors) and the labels left out of scores."""
        source = getattr(self.data, "source", None)
        meta: dict[str, Any] = source.metadata() if source is not None else {"input_kind": "image"}
        meta["backbone_params"] = dict(self.config.model.backbone_params)
        meta["score_exclude"] = list(getattr(self.data, "score_exclude", ()))
        if self.vectors:
            # Vectors have no pixels: their statistics are the fitted state (features/mean, features/std).
            meta.update(normalization=None, image_size=None, in_chans=meta["input_dim"], preprocessing=None)
        return meta

    # ---------------------------------------------------------- evaluation
    def evaluate(self, stage: StageConfig) -> list[LabelAUC] | None:
        valid = self.data.valid
        if valid is None or len(valid) == 0:
            return None
        self.model.eval()
        skipped: list[int] | None = [] if self.config.data.on_bad_image == "skip" else None
        with self._progress_bar(len(valid), f"[{stage.name}] validation") as progress:
            outs = forward_images(
                self.model, valid.images, self._prepare, self.rt.device,
                batch_size=self.config.evaluation.batch_size, num_workers=self.config.data.num_workers,
                autocast=self.rt.autocast, skipped=skipped, progress=progress,
            )
        probs = outputs_to_probabilities(
            outs, self.graph, output_kind(stage), self.config.train.combine, self.data.multiclass
        ).cpu().numpy()
        codes = valid.codes
        if skipped:  # scored without the images that could not be read
            self.valid_skipped.update(skipped)
            probs, codes = np.delete(probs, skipped, axis=0), np.delete(codes, skipped, axis=0)
        self.constant_labels = [
            label for label in constant_prediction_labels(probs, self.graph.labels)
            if label not in self.data.score_exclude
        ]
        if self.constant_labels and len(probs) > 1:
            self._say(f"warning: [{stage.name}] {_constant_warning(self.constant_labels, len(probs))}")
        return per_label_auc(codes, probs, self.graph.labels)

    # ---------------------------------------------------------- checkpoints
    def _save(
        self, name: str, stage: StageConfig, val: list[LabelAUC] | None, with_state: bool,
        position: EpochPosition | None = None,
    ) -> Path | None:
        """Write checkpoint ``name`` (rank 0); ``with_state``: all that resuming needs, inside an
        epoch at ``position`` when given (else at the end of the epoch in ``progress``)."""
        if not self.rt.is_main:
            return None
        from hmlc.models.checkpoint import flatten_state, save_checkpoint

        meta = self._metadata(stage, val)
        extra: dict[str, torch.Tensor] = {}
        source = getattr(self.data, "source", None)
        if source is not None:
            from hmlc.data.source import fitted_state_tensors

            # Fitted state (an image preprocessor's template, the feature standardisation) travels with the weights.
            for key, value in fitted_state_tensors(source).items():
                extra[key] = torch.from_numpy(np.array(value, order="C"))
        if with_state:
            meta["progress"] = dict(self.progress)
            meta["best_mean_auc"] = None if self.best_mean == -math.inf else self.best_mean
            meta["history"] = self.history
            extra["torch_rng_state"] = torch.get_rng_state()
            if self.rt.device.type == "cuda":  # dropout on the GPU draws from the device's generator
                extra["cuda_rng_state"] = torch.cuda.get_rng_state(self.rt.device)
            if self._scaler.is_enabled():
                meta["grad_scaler"] = self._scaler.state_dict()
            if self._optimizer is not None:
                tensors, opt_meta = flatten_state(self._optimizer.state_dict())
                extra.update({f"optimizer/{k}": v for k, v in tensors.items()})
                meta["optimizer"] = opt_meta
            if position is not None:
                meta["epoch_position"] = {
                    "batches": position.batches, "steps": position.steps,
                    "images": position.n_images, "seconds": position.seconds,
                }
                extra["epoch/loss_sum"] = torch.tensor(position.loss_sum, dtype=torch.float64)
                if position.generator_state is not None:
                    extra["epoch/flip_generator"] = position.generator_state
        return save_checkpoint(self.run.checkpoints / name, self.model, meta, extra_state=extra or None)

    def load_state(self, checkpoint_dir: Path) -> None:
        """Restore weights, progress, optimizer and RNG from a 'last' checkpoint."""
        from hmlc.models.checkpoint import load_checkpoint, unflatten_state

        ckpt = load_checkpoint(checkpoint_dir)
        meta = ckpt.metadata
        if meta.get("hierarchy_hash") != self.graph.content_hash:
            raise CheckpointError(f"checkpoint {checkpoint_dir} was trained on another hierarchy; cannot resume")
        if "progress" not in meta:
            raise CheckpointError(f"checkpoint {checkpoint_dir} holds no training state; resume from checkpoints/last")
        self.model.load_state_dict(ckpt.state_dict)
        self.progress = dict(meta["progress"])
        self.best_mean = -math.inf if meta.get("best_mean_auc") is None else float(meta["best_mean_auc"])
        self.history = list(meta.get("history", []))
        extra = ckpt.extra_state or {}
        if "torch_rng_state" in extra:
            torch.set_rng_state(extra["torch_rng_state"].to(torch.uint8).cpu())
        if "cuda_rng_state" in extra and self.rt.device.type == "cuda":
            torch.cuda.set_rng_state(extra["cuda_rng_state"].to(torch.uint8).cpu(), self.rt.device)
        if "grad_scaler" in meta and self._scaler.is_enabled():
            self._scaler.load_state_dict(meta["grad_scaler"])
        if "optimizer" in meta:
            tensors = {k[len("optimizer/"):]: v for k, v in extra.items() if k.startswith("optimizer/")}
            self._resume_optimizer = unflatten_state(tensors, meta["optimizer"])
        self._resume_position = _epoch_position(checkpoint_dir, meta, extra)

    # ------------------------------------------------------------- training
    def fit(
        self, stop_after_epochs: int | None = None, stop: StopRequest | None = None,
        pause_at: Collection[int] = (), on_pause: Callable[[int], None] | None = None,
    ) -> TrainResult:
        """Train the stages left; with ``stop``, a requested stop ends the current step, writes
        checkpoints/last at that exact position and raises :class:`Interrupted`.

        ``pause_at``: epochs of the first stage after which checkpoints/last is written (with all
        that resuming needs, as a stop writes it) and ``on_pause(epoch)`` is called on the main
        process before training goes on: what ``stop_after_epochs`` and a resume do, without
        leaving and re-entering (reading the data, building the model, loading the state again).
        """
        self._stop = stop
        if stop is not None and self.run.has_last_checkpoint():
            stop.hard_hint = self._resume_hint()
        epochs_run = 0
        completed = True
        last_val: list[LabelAUC] | None = None  # validation of the current weights, if any
        every = self.config.train.checkpoint_every_s
        saved_at = time.monotonic()  # checkpoints/last is due `every` seconds after this
        stage: StageConfig | None = None
        for si, stage in enumerate(self.stages):
            if si < self.progress["stage"]:
                continue
            start_epoch = self.progress["epoch"] if si == self.progress["stage"] else 0
            if start_epoch >= stage.epochs:
                self.progress = {"stage": si + 1, "epoch": 0}
                continue
            if stage.train == "head":
                from hmlc.models import HmlcModel

                assert isinstance(self.model, HmlcModel)
                self.model.freeze_backbone()
                params = list(self.model.head_parameters())
            else:
                self.model.unfreeze_backbone()  # a full stage after a head stage trains everything
                params = list(self.model.parameters())
            self._optimizer = torch.optim.Adam(
                params, lr=stage.lr, betas=tuple(self.config.train.betas), weight_decay=self.config.train.weight_decay,
                fused=True if self.config.train.fused_adam else None,
            )
            if self._resume_optimizer is not None and (start_epoch > 0 or self._resume_position is not None):
                self._optimizer.load_state_dict(self._resume_optimizer)
            self._resume_optimizer = None
            features = None
            features_seconds = 0.0
            if stage.train == "head" and stage.features_once:
                t_features = time.perf_counter()
                features = self._features()
                features_seconds = time.perf_counter() - t_features
            for epoch in range(start_epoch, stage.epochs):
                if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                    completed = False
                    break
                position, self._resume_position = self._resume_position or EpochPosition(), None
                if stop is not None and stop.requested():  # asked during validation, a save or the feature pass
                    self._interrupt(si, stage, epoch, position)
                lr = stage.lr * self.config.train.lr_decay**epoch
                for group in self._optimizer.param_groups:
                    group["lr"] = lr
                t0 = time.perf_counter()
                loss, n_images = self._train_epoch(si, stage, epoch, features, position)
                position.seconds += time.perf_counter() - t0
                if position.stopped:
                    self._interrupt(si, stage, epoch, position)
                elapsed = position.seconds
                val = last_val = self.evaluate(stage)
                val_mean = mean_auc(val, self.mean_labels) if val else math.nan
                self.progress = {"stage": si, "epoch": epoch + 1}
                row = {
                    "stage": stage.name, "epoch": epoch + 1, "lr": lr, "train_loss": loss, "train_images": n_images,
                    "images_per_s": n_images * self.rt.world_size / max(elapsed, 1e-9),
                    "epoch_seconds": elapsed, "features_seconds": features_seconds, "val_mean_auc": val_mean,
                }
                features_seconds = 0.0  # the one feature pass is counted in its stage's first epoch
                if val:
                    row.update({f"val_auc/{a.label}": a.auc for a in val if a.label not in self.data.score_exclude})
                self.history.append({k: row[k] for k in ("stage", "epoch", "train_loss", "val_mean_auc")})
                if self.log is not None:
                    self.log.log(row, step=len(self.history))
                    self._say(
                        f"[{stage.name}] epoch {epoch + 1}/{stage.epochs}  loss {loss:.4f}  "
                        f"val mean AUC {val_mean:.4f}  {row['images_per_s']:.0f} {self._unit}/s  {elapsed:.1f}s"
                    )
                if val and not math.isnan(val_mean) and val_mean > self.best_mean:
                    self.best_mean = val_mean
                    self._save("best", stage, val, with_state=False)
                epochs_run += 1
                stopping = stop_after_epochs is not None and epochs_run >= stop_after_epochs
                pause = si == 0 and epoch + 1 in pause_at
                if every <= 0 or time.monotonic() - saved_at >= every or epoch + 1 == stage.epochs or stopping or pause:
                    self._save("last", stage, val, with_state=True)
                    saved_at = time.monotonic()
                    if stop is not None:
                        stop.hard_hint = self._resume_hint()
                if pause and on_pause is not None and not stopping:
                    if self.rt.is_main:
                        with _random_state_kept(self.rt.device):  # scoring may build a model: its draws must not
                            on_pause(epoch + 1)                    # move the training's (dropout, shuffling)
                    self.rt.barrier()
            if not completed:
                break
        if completed:
            self.progress = {"stage": len(self.stages), "epoch": 0}
        self.replicas_identical = self._replicas_identical()
        final_stage = stage or self.stages[-1]
        # The last epoch already validated these weights; evaluate only if none ran here.
        final = (last_val if epochs_run else self.evaluate(final_stage)) or []
        final = [a for a in final if a.label not in self.data.score_exclude]
        if final and self.constant_labels and self.data.valid is not None and len(self.data.valid) > 1:
            self._say(f"warning: final weights: {_constant_warning(self.constant_labels, len(self.data.valid))}")
        if completed:
            self._save("last", final_stage, final or None, with_state=True)
        if self.log is not None:
            self.log.close()
        best = self.run.checkpoints / "best"
        return TrainResult(
            run_dir=self.run.path,
            labels=self.graph.labels,
            final=final,
            final_mean=mean_auc(final, self.mean_labels) if final else math.nan,
            best_mean=self.best_mean,
            best_checkpoint=best if best.exists() else None,
            completed=completed,
            history=self.history,
            mean_labels=self.mean_labels,
        )

    def _resume_hint(self) -> str:
        return f"resume with: hmlc train --resume {self.run.path}"

    def _interrupt(self, si: int, stage: StageConfig, epoch: int, position: EpochPosition) -> NoReturn:
        """Write checkpoints/last where training stands (rank 0) and raise :class:`Interrupted`."""
        assert self._stop is not None and self._stop.signum is not None
        self.progress = {"stage": si, "epoch": epoch}
        self._save("last", stage, None, with_state=True, position=position)
        self.rt.barrier()  # no rank leaves (and makes torchrun stop the others) before rank 0 has written
        if self.log is not None:
            self.log.close()
        raise Interrupted(
            self._stop.signum,
            f"interrupted at stage {stage.name} epoch {epoch + 1} step {position.steps}; "
            f"checkpoint written to {self.run.checkpoints / 'last'}",
            self._resume_hint(),
        )

    def _replicas_identical(self) -> bool | None:
        """Under DDP, whether every rank holds bitwise the same weights and buffers."""
        if not self.rt.distributed:
            return None
        same = replicas_identical(self.model, self.rt.device)
        if not same:
            self._say("warning: DDP ranks ended with different weights")
        return same

    def _say(self, text: str) -> None:
        if self.rt.is_main:
            print(text, file=sys.stderr, flush=True)

    def _progress_bar(self, total: int, desc: str) -> Progress:
        """Progress of a pass over ``total`` images (rank 0 only; off with train.progress=false)."""
        return Progress(total, desc, unit=self._unit, enabled=self.config.train.progress and self.rt.is_main)

    def _features(self) -> torch.Tensor:
        """Backbone features of every training image, computed once (frozen backbone)."""
        self.model.eval()
        skipped: list[int] | None = [] if self.config.data.on_bad_image == "skip" else None
        with self._progress_bar(len(self.data.train), "backbone features (computed once)") as progress:
            features = forward_images(
                self.model.features, self.data.train.images, self._prepare, self.rt.device,
                batch_size=self.config.evaluation.batch_size, num_workers=self.config.data.num_workers,
                autocast=self.rt.autocast, skipped=skipped, progress=progress,
            )
        self.skipped.update(skipped or ())  # their rows are never trained on (see _train_epoch)
        return features

    def _train_epoch(
        self, si: int, stage: StageConfig, epoch: int, features: torch.Tensor | None,
        position: EpochPosition | None = None,
    ) -> tuple[float, int]:
        """Train one epoch (from ``position`` on, when resuming inside it); mean loss and images.

        Stops after the step at which a stop is requested, with ``position``
        saying where (``position.stopped``).
        """
        cfg = self.config
        contributes, t_all, w_all = self._epoch_labels(si, stage, epoch)
        if features is not None and self.skipped:  # images the feature pass could not read
            contributes = contributes.copy()
            contributes[sorted(self.skipped)] = False
        if not contributes.any():
            raise ConfigError(f"stage {stage.name}: no training sample contributes to any label")
        position = position if position is not None else EpochPosition()
        sampler = self._sampler(si, contributes)
        sampler.set_epoch(epoch)
        if position.batches:  # resuming inside this epoch: the batches done are not drawn again
            sampler = _SkipFirst(sampler, position.batches * cfg.train.batch_size)
        generator = self._generator(si, epoch)
        if position.generator_state is not None:
            generator.set_state(position.generator_state)
        model = self.model
        train_module = self._train_module(si, features is not None)
        model.train()
        if stage.train == "head":
            model.freeze_backbone()  # keeps frozen BatchNorm statistics fixed
        # The loss is summed on the device: reading it every step would make the
        # host wait for the GPU at each batch instead of queueing the next one.
        total = torch.full((), position.loss_sum, dtype=torch.float64, device=self.rt.device)
        n_images, steps = position.n_images, position.steps
        bar = self._progress_bar(len(sampler), f"{stage.name} {epoch + 1}/{stage.epochs}")
        vectors = self._train_vectors if features is None else None
        if features is not None or vectors is not None:
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
            batches = [order[i : i + cfg.train.batch_size] for i in range(0, len(order), cfg.train.batch_size)]
            iterator: Any = ((None, b) for b in batches)
        else:
            from hmlc.data.images import ImageIndexDataset

            loader = DataLoader(
                ImageIndexDataset(self.data.train.images, cfg.data.on_bad_image), batch_size=cfg.train.batch_size,
                sampler=sampler, num_workers=cfg.data.num_workers, pin_memory=self.rt.device.type == "cuda",
                persistent_workers=False, drop_last=False, generator=torch.Generator(),  # global RNG untouched
                worker_init_fn=ignore_stop_signals,
            )
            # Only data.on_bad_image=skip marks images to drop from a batch.
            iterator = self._readable(loader) if cfg.data.on_bad_image == "skip" else loader
        # Under DDP, what skip leaves of a batch differs between ranks, yet the ranks must step
        # together (each backward waits for every rank's gradients): they agree on each step.
        agree = self.rt.distributed and features is None and vectors is None and cfg.data.on_bad_image == "skip"
        # BatchNorm in training mode cannot normalise a batch of one: such a batch (the
        # remainder of an epoch, or what data.on_bad_image=skip left) is drawn but not trained on.
        needs_two = any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in train_module.modules())
        fewest = 2 if needs_two else 1  # samples a step needs
        for x, idx in iterator:
            position.batches += 1
            if agree and not every_rank(len(idx) >= fewest, self.rt.cpu_group):
                if not self._told_rank_left_out:
                    self._told_rank_left_out = True
                    self._say(
                        "note: a training step is left out on every DDP rank when one rank's batch has nothing "
                        "to train on (data.on_bad_image=skip left it no image, or one with BatchNorm)"
                    )
                continue
            if not len(idx):
                continue  # every image of the batch was unreadable (data.on_bad_image=skip)
            if needs_two and len(idx) == 1:
                if not self._told_single:
                    self._told_single = True
                    self._say(
                        "note: a training batch of one sample is left out (BatchNorm needs two or more); a "
                        "train.batch_size that leaves no batch of one trains on every sample in every epoch"
                    )
                continue
            idx_dev = idx.to(self.rt.device, non_blocking=True)
            with self.rt.autocast():
                if features is not None:
                    out = train_module(features[idx_dev])
                elif vectors is not None:
                    out = train_module(vectors.index_select(0, idx_dev))
                else:
                    x = self._flip(x.to(self.rt.device, non_blocking=True), generator)
                    out = train_module(self._prepare(x))
            loss = self._loss(stage, out, t_all[idx_dev], w_all[idx_dev])
            self._optimizer.zero_grad(set_to_none=True)
            # fp16 needs loss scaling; the scaler is a no-op for bf16 and fp32.
            self._scaler.scale(loss).backward()
            if cfg.train.grad_clip:
                self._scaler.unscale_(self._optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            self._scaler.step(self._optimizer)
            self._scaler.update()
            total += loss.detach().double() * len(idx)
            n_images += len(idx)
            steps += 1
            if not bar.disable:
                bar.update(len(idx))
                if steps % 20 == 1:  # the reporter shows the rate itself
                    bar.set_postfix(loss=f"{float(total) / n_images:.4f}")
            fault_point("step", stage.name, epoch + 1, steps)
            if self._stop is not None and self._stop.requested():
                position.stopped = True
                break
        bar.close()
        if agree:  # every rank lists what any rank could not read (the features pass and skipped.txt rely on it)
            self.skipped = union_over_ranks(self.skipped, self.rt.cpu_group)
        if position.stopped:
            position.steps, position.n_images, position.loss_sum = steps, n_images, float(total)
            position.generator_state = generator.get_state()
            return float(total) / max(n_images, 1), n_images
        if self.rt.distributed:
            # DDP syncs buffers at the start of a forward; the last forward of the
            # epoch left each rank with its own BatchNorm statistics. Take rank 0's.
            import torch.distributed as dist

            for buffer in model.buffers():
                dist.broadcast(buffer.data, src=0)
        return float(total) / max(n_images, 1), n_images

    def _epoch_labels(self, si: int, stage: StageConfig, epoch: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Which samples contribute, and the targets and loss weights on the device, for ``epoch`` of stage ``si``.

        Encoded once per stage unless policy.redraw_each_epoch draws them anew each epoch
        (without it the encoding does not depend on the epoch).
        """
        from hmlc.conditional import contributing_samples

        cfg = self.config
        key = (si, epoch if cfg.policy.redraw_each_epoch else -1)
        if self._labels_cache is not None and self._labels_cache[0] == key:
            return self._labels_cache[1]
        targets, weights = self.data.encode(cfg.seed, epoch, cfg.policy.redraw_each_epoch)
        weights = self._stage_weights(stage, weights)
        contributes = (
            contributing_samples(weights > 0, weights)
            if stage.subset == "conditional"
            else np.ones(len(targets), dtype=bool)
        )
        encoded = (
            contributes,
            torch.from_numpy(targets).to(self.rt.device),
            torch.from_numpy(weights.astype(np.float32)).to(self.rt.device),
        )
        self._labels_cache = (key, encoded)
        return encoded

    def _readable(self, loader: DataLoader) -> Any:
        """The loader's batches without the images data.on_bad_image=skip left out (kept in ``skipped``).

        A batch of unreadable images only comes empty (it still counts as drawn).
        """
        from hmlc.data.images import split_skipped

        for x, idx in loader:
            x, idx, skipped = split_skipped(x, idx)
            self.skipped.update(skipped)
            yield x, idx

    def _train_module(self, stage_index: int, on_features: bool) -> nn.Module:
        """What a training step calls: the model (or its head on cached features), wrapped
        for DDP and compiled as configured; built once per stage so compiled code is reused."""
        key = (stage_index, on_features)
        if self._wrapped is not None and self._wrapped[0] == key:
            return self._wrapped[1]
        module: nn.Module = _Classifier(self.model) if on_features else self.model
        if self.rt.distributed:
            module = nn.parallel.DistributedDataParallel(
                module, device_ids=[self.rt.device.index] if self.rt.device.type == "cuda" else None
            )
        if self.config.train.compile and not on_features:
            module = torch.compile(module)  # type: ignore[assignment]
        self._wrapped = (key, module)
        return module


def _epoch_position(checkpoint_dir: Path, meta: dict[str, Any], extra: dict[str, torch.Tensor]) -> EpochPosition | None:
    """Where inside an epoch a checkpoint written on a stop request was (None: at an epoch's end)."""
    recorded = meta.get("epoch_position")
    if recorded is None:
        return None
    try:
        generator = extra.get("epoch/flip_generator")
        return EpochPosition(
            batches=int(recorded["batches"]), steps=int(recorded["steps"]), n_images=int(recorded["images"]),
            seconds=float(recorded["seconds"]), loss_sum=float(extra["epoch/loss_sum"].item()),
            generator_state=None if generator is None else generator.to(torch.uint8).cpu(),
        )
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"checkpoint {checkpoint_dir}: its epoch_position is incomplete; cannot resume") from None


def _constant_warning(labels: list[str], n: int) -> str:
    """One line naming the labels whose validation predictions are one constant."""
    shown = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
    return (
        f"the model predicts one constant probability on all {n} validation samples for "
        f"{len(labels)} label(s): {shown}; it has learned nothing of them (AUC 0.5): "
        "check the learning rate, the backbone's initialisation and the data"
    )


def _mean_labels(
    chosen: Any, labels: tuple[str, ...], excluded: tuple[str, ...]
) -> tuple[str, ...] | None:
    """evaluation.labels (else every label) less the labels left out of scores; None: every label."""
    if not chosen and not excluded:
        return None
    return tuple(label for label in (chosen or labels) if label not in excluded)


def replicas_identical(model: nn.Module, device: torch.device) -> bool:
    """Whether every rank of the default process group holds bitwise the same state dict.

    Each rank hashes its weights' bytes; only the 32-byte digests are gathered,
    whatever the model's size and the number of ranks. A collective: every
    rank must call it.
    """
    import hashlib

    import torch.distributed as dist

    digest = hashlib.blake2b(digest_size=32)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    mine = torch.tensor(list(digest.digest()), dtype=torch.uint8, device=device)
    gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of the batch flipped horizontally with probability 1/2.

    The draw comes from ``generator`` on the CPU, so it is the same on every
    device; the flip itself runs where ``x`` is (on the GPU after the copy).
    """
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    if not flip.any():
        return x
    mask = flip.to(x.device, non_blocking=True).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(mask, x.flip(-1), x)


class _Classifier(nn.Module):
    """The model's dropout + head as a module of its own (stage 2 on cached features)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.classify(features)


class _SkipFirst(torch.utils.data.Sampler[int]):
    """A sampler's indices after its first ``n`` (the part of an epoch a resumed run has done)."""

    def __init__(self, sampler: Any, n: int) -> None:
        self.sampler = sampler
        self.n = n

    def __iter__(self) -> Any:
        import itertools

        return itertools.islice(iter(self.sampler), self.n, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.n, 0)


def _report_skipped(trainer: Trainer, data: ExperimentData, run: RunDirectory) -> None:
    """Add the images data.on_bad_image=skip left out to the run's skipped.txt and say how many it lists."""
    if not trainer.rt.is_main or not (trainer.skipped or trainer.valid_skipped):
        return
    from hmlc.data.images import write_skipped

    listed = run.path / "skipped.txt"
    write_skipped(listed, data.train.images, sorted(trainer.skipped))
    if data.valid is not None:
        write_skipped(listed, data.valid.images, sorted(trainer.valid_skipped))
    lines = set(listed.read_text(encoding="utf-8").splitlines())

    def count(images: Any) -> int:
        paths = getattr(images, "paths", None)
        return len(lines & set(paths)) if paths is not None else 0

    n_valid = count(data.valid.images) if data.valid is not None else 0
    trainer._say(
        f"skipped {len(lines)} unreadable image(s) ({count(data.train.images)} training, {n_valid} validation; "
        f"data.on_bad_image=skip); list: {listed}"
    )


@contextlib.contextmanager
def _random_state_kept(device: torch.device) -> Iterator[None]:
    """Restore the global random generators (torch's, the device's, numpy's, Python's) on leaving."""
    import random

    states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)


def train(
    config: ExperimentConfig,
    run_dir: Path | None = None,
    resume: Path | None = None,
    stop_after_epochs: int | None = None,
    pause_at: Collection[int] = (),
    on_pause: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train as configured (or continue the run in ``resume``); returns the results.

    ``pause_at`` / ``on_pause``: see :meth:`Trainer.fit` (the benchmarks score a run part-way).
    """
    if resume is not None:
        resume = Path(resume)
        cfg_file = resume / "config.yaml"
        if not cfg_file.is_file():
            raise CheckpointError(f"--resume {resume}: no config.yaml there; give a run directory made by hmlc train")
        config = load_config(cfg_file)
        run = RunDirectory(resume)
    runtime = setup_runtime(
        config.train.device, config.train.precision, config.train.channels_last,
        config.train.deterministic, config.train.threads,
    )
    created = None
    try:
        if resume is not None and runtime.is_main:
            run.lock()
        # Everything a user can get wrong is checked before the run directory exists.
        data = prepare_experiment(config)
        if len(data.train) == 0:
            raise DataError(f"split {config.data.train_split!r} of dataset {config.data.dataset!r} holds no sample; "
                            "check data.train_split, data.limit and the labels file")
        check_stages(config.train.resolved_stages(), data.multiclass)
        if resume is None:
            name = config.output.name or RunDirectory.default_name(config.data.dataset, config.train.method)
            parent = Path(run_dir) if run_dir else config.output.dir
            if runtime.is_main:
                run = created = RunDirectory.create(parent, name)
            else:
                run = RunDirectory(parent / name)
            runtime.barrier()
        trainer = Trainer(config, run, runtime, data)
        if resume is not None and runtime.is_main:
            run.remove_unfinished_writes()  # left by a process killed while writing
        if resume is not None and run.has_last_checkpoint():
            trainer.load_state(run.checkpoints / "last")
        elif runtime.is_main:  # a new run, or one resumed that never saved a checkpoint: it starts from the beginning
            from hmlc.engine.rundir import atomic_write_text

            atomic_write_text(run.config_file, config_to_yaml(config))
            write_json(run.path / "closure.json", {"enabled": config.data.closure.enabled, "changed": data.closure_changed})
            changed = {k: v for k, v in data.closure_changed.items() if v}
            noun = "vectors" if data.input_kind == "features" else "images"
            trainer._say(
                f"run directory: {run.path}\n"
                f"data: {len(data.train)} training {noun}, {len(data.valid) if data.valid else 0} validation {noun}, "
                f"{len(data.graph)} labels; closure changed "
                + (", ".join(f"{k}: {v}" for k, v in changed.items()) if changed else "nothing")
            )
        try:
            with StopRequest(runtime.distributed, runtime.cpu_group) as stop:
                result = trainer.fit(stop_after_epochs, stop, pause_at, on_pause)
        except Interrupted:
            _report_skipped(trainer, data, run)
            raise
        _report_skipped(trainer, data, run)
        if runtime.is_main:
            write_json(
                run.path / "results.json",
                {
                    "completed": result.completed,
                    "labels": list(result.labels),
                    "final": {a.label: {"auc": a.auc, "n_pos": a.n_pos, "n_neg": a.n_neg} for a in result.final},
                    "final_mean_auc": result.final_mean,
                    "world_size": runtime.world_size,
                    "replicas_identical": trainer.replicas_identical,
                    "best_mean_auc": None if result.best_mean == -math.inf else result.best_mean,
                    "history": result.history,
                },
            )
        # All ranks leave together: destroying the process group is a collective,
        # and a rank that tears down while another still writes can abort (gloo)
        # or hang (NCCL). Not on the error path, where a barrier could wait forever.
        runtime.barrier()
        return result
    except BaseException:
        if created is not None:
            created.discard_if_unstarted()  # a failed run leaves no folder that can be neither resumed nor reused
        raise
    finally:
        if resume is not None or created is not None:
            run.release()
        teardown_runtime(runtime)
