"""Experiment configuration: the typed schema of every key (``schema``) and reading YAML files and overrides into it
(``load``). The rule of the package: it imports no torch at import time (the architecture check is ``model``'s, loaded
when a config is validated), so the CLI, sweeps and the dataset tool read configs cheaply. Import from here.
"""

from espcn_lab.config.load import check_value, from_dict, load_config, load_raw, parse_override
from espcn_lab.config.schema import (SECTIONS, Config, DataConfig, LogConfig, ModelConfig, OptimConfig, RunConfig,
                                     TrainerConfig, check_semantics, flat_keys, max_time_seconds, to_dict)
from espcn_lab.errors import ConfigError  # what every function here raises

__all__ = ["SECTIONS", "Config", "ConfigError", "DataConfig", "LogConfig", "ModelConfig", "OptimConfig", "RunConfig", "TrainerConfig",
           "check_semantics", "check_value", "flat_keys", "from_dict", "load_config", "load_raw", "max_time_seconds",
           "parse_override", "to_dict"]
