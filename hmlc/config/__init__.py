"""Configuration: pydantic models, YAML files, presets and ``--set`` overrides."""

from hmlc.config.loading import (
    NOT_LEARNED,
    apply_overrides,
    config_to_dict,
    config_to_yaml,
    deep_merge,
    format_validation_error,
    learning_settings,
    load_config,
    parse_override,
    read_config_file,
    use_presets,
)
from hmlc.config.models import (
    ClosureConfig,
    DataConfig,
    EvaluationConfig,
    ExperimentConfig,
    ModelConfig,
    OutputConfig,
    PolicyConfig,
    StageConfig,
    TrainConfig,
)

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
    "load_config",
    "use_presets",
    "read_config_file",
    "apply_overrides",
    "parse_override",
    "deep_merge",
    "format_validation_error",
    "config_to_dict",
    "config_to_yaml",
    "learning_settings",
    "NOT_LEARNED",
]
