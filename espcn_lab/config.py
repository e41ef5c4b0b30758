"""Experiment configuration: frozen dataclasses, YAML loading and dotted ``key=value`` overrides.

This is the only place YAML configs are read. The key names are a contract shared with sweeps,
docs and users; unknown keys and wrong types fail at load time with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; the message names the key."""


@dataclass(frozen=True)
class ModelConfig:
    scale: int = 3
    channels: int = 1  # 1 = Y of YCbCr (paper), 3 = RGB
    features: list[int] = field(default_factory=lambda: [64, 32])
    kernels: list[int] = field(default_factory=lambda: [5, 3, 3])  # last = sub-pixel layer
    activation: str = "tanh"


@dataclass(frozen=True)
class DataConfig:
    train_shards: Union[str, list[str]] = ""  # folder, glob, brace pattern, list, or URL / pipe:
    val_dirs: dict[str, str] = field(default_factory=dict)  # NAME -> folder of HR images
    batch_size: int = 64
    num_workers: int = 2  # reader processes per rank; 0 = a background thread of the training process
    samples_per_epoch: int = 0  # patch pairs per epoch; 0 = one pass over the shards (manifest count)
    shuffle_buffer: int = 10000
    augment: bool = False  # random flips and 90-degree rotations
    val_every_n_epochs: int = 1


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adam", "adamw"] = "adam"
    learning_rate: float = 0.01
    final_learning_rate: float = 0.0001
    last_layer_lr_scale: float = 0.1  # "the final layer learns 10 times slower"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_decay_factor: float = 0.5  # multiply the rate by this when improvement stalls
    plateau_threshold: float = 0.01  # relative improvement mu below which the rate is lowered
    plateau_patience: int = 10  # epochs below mu before lowering
    early_stop_patience: int = 100  # epochs without improvement before stopping (paper: 100)
    # plateau: the paper's rule above; cosine: from learning_rate down to final_learning_rate over
    # trainer.max_epochs (suits a fixed budget: the run ends at the low rate instead of mid-plateau);
    # cosine_time: the same curve over trainer.max_time of wall clock, updated every step (a time
    # budget on hardware of unknown speed: the run still ends at the low rate)
    schedule: Literal["plateau", "cosine", "cosine_time"] = "plateau"
    # the MSE over only the output pixels whose receptive field lies inside the patch (convolutions run
    # without padding: fewer multiply-adds); with 17x17 patches and 5-3-3 kernels, 72% of the outputs
    # see zero padding, which whole test images almost never do
    valid_loss: bool = False


@dataclass(frozen=True)
class TrainerConfig:
    max_epochs: int = 1000
    max_steps: int = -1
    accelerator: str = "auto"
    devices: Union[int, str, list[int]] = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 50
    gradient_clip_val: Optional[float] = None
    max_time: Optional[str] = None  # wall-clock budget "DD:HH:MM:SS"; stops cleanly with checkpoints
    channels_last: bool = True  # NHWC activations: ~3x faster convolutions on CPU (oneDNN), and on GPU tensor cores


@dataclass(frozen=True)
class RunConfig:
    dir: str = "runs/default"
    name: Optional[str] = None  # run folder name under dir; default: a timestamp
    seed: int = 0
    resume: Optional[str] = None  # a checkpoint path, or "last" for the run folder's last.ckpt
    init_from: Optional[str] = None  # start from these weights (x2|x3|x4, .ckpt, .safetensors); fresh optimiser


@dataclass(frozen=True)
class LogConfig:
    wandb_mode: Literal["online", "offline", "disabled", "auto"] = "auto"
    wandb_project: str = "espcn-lab"
    latency: bool = True  # measure ms per 1080p output frame at the end of fit


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    run: RunConfig = field(default_factory=RunConfig)
    log: LogConfig = field(default_factory=LogConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; ints widen to floats. Raise ConfigError naming key."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping NAME: value, got {value!r}")
        return {str(k): _coerce(f"{key}.{k}", v, args[1]) for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"unknown config key {prefix}{key!s} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in raw.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f"{prefix}{name}", value, tp)
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'model.features=[32,16]'`` -> (['model', 'features'], [32, 16]); the value is read as YAML."""
    text = text.lstrip("-")
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. optim.learning_rate=0.003)")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of the nested dict ``raw`` with dotted overrides applied.

    A mapping given for a section (``model={'features': [32], 'kernels': [5, 3]}``, which is what a W&B
    agent's ``${args_no_hyphens}`` passes for a dict-valued sweep parameter) is merged into that
    section; a mapping for a key whose value is a mapping (``data.val_dirs``) replaces it.
    """
    import copy

    out = copy.deepcopy(raw)
    keys = flat_keys()
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        section = isinstance(value, dict) and ".".join(path) not in keys
        old = node.get(path[-1])
        node[path[-1]] = _merge(old, value) if section and isinstance(old, dict) else value
    return out


_REFERENCE = re.compile(r"\$\{([A-Za-z_]\w*(?:\.\w+)+)\}")


def interpolate(raw: dict) -> dict:
    """Replace ``${model.scale}``-style references to config keys inside string values.

    Lets one file say ``data.train_shards: shards/imagenet-x${model.scale}`` so a sweep over
    ``model.scale`` trains each scale on its own shards. References to unknown keys (e.g. shell
    variables in a ``pipe:`` URL) are left alone.
    """
    keys, merged = flat_keys(), _merge(to_dict(Config()), raw)

    def lookup(key: str, depth: int) -> Any:
        node: Any = merged
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return resolve(node, depth + 1) if isinstance(node, str) else node

    def resolve(value: Any, depth: int = 0) -> Any:
        if depth > 10:
            raise ConfigError(f"config reference loop near {value!r}")
        if isinstance(value, dict):
            return {k: resolve(v, depth) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, depth) for v in value]
        if not isinstance(value, str):
            return value
        return _REFERENCE.sub(lambda m: str(lookup(m[1], depth)) if m[1] in keys else m[0], value)

    return resolve(raw)


def _check_semantics(cfg: Config) -> Config:
    from espcn_lab.model import ACTIVATIONS  # deferred: imports torch

    m = cfg.model
    if m.scale < 1:
        raise ConfigError(f"model.scale: must be >= 1, got {m.scale}")
    if m.channels not in (1, 3):
        raise ConfigError(f"model.channels: must be 1 (Y) or 3 (RGB), got {m.channels}")
    if len(m.kernels) != len(m.features) + 1:
        raise ConfigError(f"model.kernels: needs len(model.features)+1 = {len(m.features) + 1} entries, got {m.kernels}")
    if any(k < 1 or k % 2 == 0 for k in m.kernels):
        raise ConfigError(f"model.kernels: entries must be positive odd numbers, got {m.kernels}")
    if any(f < 1 for f in m.features):
        raise ConfigError(f"model.features: entries must be positive, got {m.features}")
    if m.activation not in ACTIVATIONS:
        raise ConfigError(f"model.activation: must be one of {sorted(ACTIVATIONS)}, got {m.activation!r}")
    if cfg.data.batch_size < 1:
        raise ConfigError(f"data.batch_size: must be >= 1, got {cfg.data.batch_size}")
    if cfg.optim.learning_rate <= 0:
        raise ConfigError(f"optim.learning_rate: must be > 0, got {cfg.optim.learning_rate}")
    if cfg.trainer.max_time is not None:
        max_time_seconds(cfg.trainer.max_time)
    if cfg.optim.schedule == "cosine_time" and cfg.trainer.max_time is None:
        raise ConfigError("optim.schedule=cosine_time: needs trainer.max_time (DD:HH:MM:SS), the budget the rate decays over")
    return cfg


def max_time_seconds(text: str) -> int:
    """Seconds in a ``trainer.max_time`` string ``DD:HH:MM:SS``, exactly the form Lightning's Timer accepts
    (whole numbers, two digits after the days); ConfigError otherwise."""
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", text.strip())
    if match is None:
        raise ConfigError(f"trainer.max_time: expected DD:HH:MM:SS, got {text!r}")
    days, hours, minutes, seconds = (int(g) for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ConfigError(f"trainer.max_time: must be more than zero, got {text!r}")
    return total


def from_dict(raw: dict) -> Config:
    """Validate a nested dict into a Config (types, then ranges and model consistency)."""
    return _check_semantics(_build(Config, raw or {}, ""))


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML file (or start from defaults when ``path`` is None) and apply ``key=value`` overrides."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return from_dict(interpolate(apply_overrides(raw, list(overrides))))


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (YAML/JSON serialisable)."""
    return dataclasses.asdict(cfg)


def flat_keys(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Every dotted key and its type annotation, e.g. ``{'model.scale': int, ...}`` (for sweep checks)."""
    out: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp):
            out.update(flat_keys(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out


def check_value(key: str, value: Any) -> Any:
    """Validate one dotted key's value against the schema; raises ConfigError."""
    keys = flat_keys()
    if key not in keys:
        prefix = key.split(".")[0]
        if prefix == "data" and key.startswith("data.val_dirs."):
            return _coerce(key, value, str)
        raise ConfigError(f"unknown config key {key}")
    return _coerce(key, value, keys[key])
