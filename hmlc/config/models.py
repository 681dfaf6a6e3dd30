"""The whole experiment as typed pydantic models.

Every field has a default and a description; unknown keys are errors
(``extra="forbid"``). docs/configuration.md is generated from these models
(``python -m hmlc.config.reference``) and a test keeps it in sync.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ExperimentConfig",
    "DataConfig",
    "ClosureConfig",
    "PolicyConfig",
    "ModelConfig",
    "StageConfig",
    "TrainConfig",
    "EvaluationConfig",
    "OutputConfig",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ClosureConfig(_Section):
    """Label closure over the hierarchy, applied to training labels before anything else."""

    enabled: bool = Field(True, description="Propagate a positive child to all its ancestors.")
    negative_down: bool = Field(
        False, description="Also make every descendant of a negative label negative (unless positive)."
    )


class DataConfig(_Section):
    """Where the images and labels come from."""

    dataset: str = Field("synthetic", description="Registered dataset reader (`hmlc list datasets`).")
    root: Path | None = Field(
        None, description="Dataset folder (or its parent); default: $HMLC_DATA/<dataset> when set."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Reader-specific options (see the dataset's documentation)."
    )
    image_size: int = Field(64, ge=8, le=4096, description="Square side the images are resized to.")
    train_split: str = Field("train", description="Split used for training.")
    eval_split: str = Field("valid", description="Split used for per-epoch validation and the final table.")
    blank: Literal["negative", "ignore"] | None = Field(
        None, description="How blank (not mentioned) codes count: 'negative' or 'ignore'; default: the dataset's."
    )
    closure: ClosureConfig = Field(default_factory=ClosureConfig, description="Label closure.")
    limit: int | None = Field(None, ge=1, description="Use only the first N training samples (quick runs).")
    preprocessor: str | None = Field(None, description="Registered preprocessor applied to every image.")
    preprocessor_params: dict[str, Any] = Field(default_factory=dict, description="Options of the preprocessor.")
    cache_dir: Path | None = Field(
        None, description="Root of the preprocessed-image cache (`hmlc prepare`); default $HMLC_CACHE or ~/.cache/hmlc."
    )
    augment: bool = Field(True, description="Random horizontal flips during training.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0: load in the main process).")
    on_bad_image: Literal["error", "skip"] = Field(
        "error", description="An image that cannot be read (training, validation, `hmlc predict --dataset`): "
        "'error' stops (naming the file), 'skip' leaves it out and lists it (the run folder's skipped.txt).",
    )
    max_image_pixels: int | None = Field(
        None, ge=1, description="Refuse images whose header claims more pixels (height x width) than this, "
        "before decoding; default: $HMLC_MAX_IMAGE_PIXELS, else 100000000.",
    )


class PolicyConfig(_Section):
    """Uncertainty-label policies: a default plus per-label overrides."""

    default: str = Field("u-ones-lsr", description="Policy for every label without an override.")
    overrides: dict[str, str] = Field(
        default_factory=dict, description="Label -> policy name, for labels that differ from the default."
    )
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Policy name -> parameters, e.g. {'u-ones-lsr': {'low': 0.55, 'high': 0.85}}.",
    )
    redraw_each_epoch: bool = Field(
        False, description="LSR: draw new soft targets every epoch (else fixed per sample)."
    )


class ModelConfig(_Section):
    """The network: a registered backbone and a K-output head."""

    backbone: str = Field(
        "tiny_cnn", description="Registered backbone, or timm:NAME / torchvision:NAME (`hmlc list backbones`)."
    )
    pretrained: bool = Field(False, description="Start from ImageNet weights found in local files.")
    weights: Path | None = Field(None, description="Explicit pretrained-weights file (else the torch/timm caches).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the head.")
    backbone_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of a backbone that takes them, e.g. mlp: {layers: 2, width: 256, dropout: 0.0, "
        "activation: relu} (relu, gelu, silu, tanh).",
    )


class StageConfig(_Section):
    """One training stage."""

    name: str = Field(..., description="Stage name, used for checkpoints and logs.")
    subset: Literal["all", "conditional"] = Field(
        "all", description="'conditional': sample only the conditional subset, with per-label masks."
    )
    loss: Literal["bce", "conditional", "unconditional", "mcloss"] = Field(
        "bce",
        description="'bce': plain masked BCE on outputs; 'conditional': BCE with conditional masks; "
        "'unconditional': BCE on chain-rule probabilities (log space); "
        "'mcloss': C-HMCNN's MCLoss through the max-constraint module.",
    )
    train: Literal["all", "head"] = Field("all", description="'head': freeze everything but the last layer.")
    epochs: int = Field(..., ge=0, description="Epochs of this stage.")
    lr: float = Field(..., gt=0, allow_inf_nan=False, description="Initial learning rate of this stage.")
    features_once: bool = Field(
        True, description="With train='head': compute backbone features once and train the head on them."
    )


class TrainConfig(_Section):
    """The optimisation recipe (defaults sized for the synthetic data on a CPU)."""

    method: Literal["flat", "ct", "chmcnn"] = Field(
        "ct",
        description="'flat': one stage on all labels; 'ct': conditional training in two stages; "
        "'chmcnn': one stage with MCLoss, outputs made coherent by the max-constraint module (C-HMCNN).",
    )
    stages: list[StageConfig] | None = Field(
        None, description="Explicit stages; default: derived from method, epochs, lr and head_* fields."
    )
    epochs: int = Field(8, ge=0, description="Epochs of the flat stage / CT stage 1 (paper: 5).")
    lr: float = Field(3e-3, gt=0, allow_inf_nan=False, description="Adam learning rate (paper: 1e-4).")
    lr_decay: float = Field(0.7, gt=0, le=1, description="Multiply the learning rate by this after each epoch (paper: 0.1).")
    head_epochs: int = Field(2, ge=0, description="CT stage 2 epochs (last layer only, full data).")
    head_lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="CT stage 2 learning rate.")
    head_loss: Literal["unconditional", "conditional"] = Field(
        "unconditional", description="CT stage 2 loss: BCE on chain-rule probabilities, or the stage-1 masked loss."
    )
    batch_size: int = Field(32, ge=1, le=1 << 20, description="Images per step (per process under DDP).")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False, description="Adam weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    fused_adam: bool = Field(
        False,
        description="Adam's fused kernel (CPU and CUDA): one pass over the weights, faster for large heads "
        "(the Gene Ontology's); it rounds differently, so the weights differ slightly from a run without it.",
    )
    grad_clip: float | None = Field(None, gt=0, allow_inf_nan=False, description="Clip the gradient norm to this value.")
    checkpoint_every_s: float = Field(
        0.0, ge=0, allow_inf_nan=False,
        description="Write checkpoints/last after an epoch only once this many seconds have passed since the last "
        "write (0: after every epoch). The last epoch of each stage, --stop-after-epochs and an interruption "
        "(Ctrl-C, SIGTERM) always write it; a kill -9 loses up to this long besides the epoch in progress. "
        "For short epochs (the HMC datasets'), where writing the optimizer state costs a good part of an epoch.",
    )
    combine: str = Field("product", description="Parent combination rule of the chain rule: 'product' or 'min'.")
    device: str = Field("auto", description="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision on CUDA ('auto': bf16 where supported); the CPU runs fp32."
    )
    channels_last: bool = Field(True, description="channels_last memory format on CUDA.")
    compile: bool = Field(False, description="torch.compile the model.")
    deterministic: bool = Field(False, description="Deterministic algorithms (bitwise-reproducible on CPU).")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice).")
    progress: bool = Field(
        True,
        description="Progress on stderr: a bar on a terminal, else a line every $HMLC_PROGRESS_SECONDS seconds "
        "(default 10); false: none.",
    )

    @model_validator(mode="after")
    def _stages_not_empty(self) -> TrainConfig:
        if self.stages is not None and not self.stages:
            raise ValueError("stages is empty; remove it to derive stages from 'method'")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas {list(self.betas)} must each be in [0, 1), e.g. [0.9, 0.999]")
        if sum(stage.epochs for stage in self.resolved_stages()) == 0:
            raise ValueError("every stage has 0 epochs: nothing to train; set train.epochs (or the stages' epochs)")
        return self

    def resolved_stages(self) -> list[StageConfig]:
        """The explicit stages, or those ``method`` implies."""
        if self.stages is not None:
            return list(self.stages)
        if self.method == "flat":
            return [StageConfig(name="flat", subset="all", loss="bce", train="all", epochs=self.epochs, lr=self.lr)]
        if self.method == "chmcnn":
            return [
                StageConfig(name="chmcnn", subset="all", loss="mcloss", train="all", epochs=self.epochs, lr=self.lr)
            ]
        return [
            StageConfig(name="ct1", subset="conditional", loss="conditional", train="all", epochs=self.epochs, lr=self.lr),
            StageConfig(
                name="ct2",
                subset="all",
                loss="unconditional" if self.head_loss == "unconditional" else "conditional",
                train="head",
                epochs=self.head_epochs,
                lr=self.head_lr,
            ),
        ]


class EvaluationConfig(_Section):
    """What the end-of-training evaluation reports."""

    labels: list[str] | None = Field(None, description="Labels in the mean AUC (default: every label with both classes).")
    batch_size: int = Field(128, ge=1, le=1 << 20, description="Images per inference step.")


class OutputConfig(_Section):
    """Where runs are written."""

    dir: Path = Field(Path("runs"), description="Parent folder of run directories.")
    name: str | None = Field(None, description="Run directory name (default: <dataset>-<method>-<timestamp>).")
    tensorboard: bool = Field(True, description="Also log to TensorBoard when it is installed.")


class ExperimentConfig(_Section):
    """A whole experiment: data, hierarchy, policy, model, stages, evaluation, output."""

    seed: int = Field(0, description="Seed of everything (data order, LSR draws, initialisation).")
    hierarchy: str | None = Field(
        None, description="Registered hierarchy name or a hierarchy file; default: the dataset's."
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Data.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Uncertainty policies.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="Evaluation.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Output.")
