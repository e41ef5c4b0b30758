"""Experiment configuration: the typed schema of every key, YAML files and dotted ``key=value`` overrides.

The schema is a set of dataclasses checked by OmegaConf: unknown keys and wrong types fail at load time with one line
naming the key (``ConfigError``); ``${model.scale}`` interpolates; key names are a contract with sweeps, docs, users.
A file may start from others (``extends:``, a path or list relative to it); in files and overrides, a mapping merges
into its section, any other value (``data.val_dirs`` too) replaces it. The only place YAML configs are read.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from espcn_lab.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:  # what the keys mean and which combinations are valid: espcn_lab.model
    scale: int = 3
    channels: int = 1  # 1 = Y of YCbCr (paper), 3 = RGB
    features: list[int] = field(default_factory=lambda: [64, 32])
    kernels: list[int] = field(default_factory=lambda: [5, 3, 3])  # last = sub-pixel layer
    activation: str = "tanh"
    reparam: str = "none"  # "ecb": train each convolution as ECB branches, folded into the plain network on save


@dataclass(frozen=True)
class DataConfig:
    train_shards: Union[str, list[str]] = ""  # folder, glob, brace pattern, list, or URL / pipe:
    val_dirs: dict[str, str] = field(default_factory=dict)  # NAME -> folder of HR images, video, or shard folder
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
    # plateau: the paper's rule above; cosine: learning_rate down to final_learning_rate over trainer.max_epochs;
    # cosine_time: the same over trainer.max_time of wall clock, per step (a time budget on unknown hardware)
    schedule: Literal["plateau", "cosine", "cosine_time"] = "plateau"
    warmup_steps: int = 0  # cosine_time: the rate rises linearly over the first N steps (Adam's first are ~lr each)
    # MSE over only the outputs whose receptive field lies inside the patch (unpadded convolutions, fewer MACs):
    # with 17x17 patches and 5-3-3 kernels 72% of the outputs see zero padding, whole test images almost none
    valid_loss: bool = False
    # distillation: loss = (1 - w) * MSE to the HR patch + w * MSE to a frozen teacher's output (w = distill_weight)
    distill_from: Union[str, list[str]] = ""  # x2|x3|x4, .ckpt, .safetensors (this scale, any width/depth); several: mean
    distill_weight: float = 0.5
    distill_self_ensemble: bool = False  # the teacher averages its 8 flipped/rotated passes (8x its cost)


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
    ddp_timeout_s: int = 300  # strategy=ddp*: a rank waiting this long for the others fails (a dead rank: at once)


@dataclass(frozen=True)
class RunConfig:
    dir: str = "runs/default"
    name: Optional[str] = None  # run folder name under dir; default: a timestamp
    seed: int = 0
    resume: Optional[str] = None  # a checkpoint path, or "last" for the run folder's last.ckpt
    init_from: Optional[str] = None  # start from these weights (x2|x3|x4, .ckpt, .safetensors); fresh optimiser
    checkpoint_every_min: float = 10.0  # last.ckpt also every N minutes of training (a kill -9 loses <= N); 0: off


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


def flat_keys(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Every dotted key and its type annotation, e.g. ``{'model.scale': int, ...}`` (for sweep checks)."""
    out: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        out.update(flat_keys(tp, f"{prefix}{name}.") if dataclasses.is_dataclass(tp) else {f"{prefix}{name}": tp})
    return out


SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


def parse_override(text: str) -> tuple[str, Any]:
    """``'model.features=[32,16]'`` -> ('model.features', [32, 16]); the value is read as YAML."""
    text = text.lstrip("-")
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (e.g. optim.learning_rate=0.003)")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _set(raw: dict, key: str, value: Any) -> None:
    """Set dotted ``key`` in the nested dict ``raw``: a mapping for a section merges, anything else replaces."""
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if isinstance(value, dict) and isinstance(node.get(last), dict) and key in SECTIONS:
        for sub, sub_value in value.items():
            _set(node[last], sub, sub_value)
    else:
        node[last] = value


def _merge(base: dict, update: dict) -> dict:
    """``update`` over a copy of ``base`` by the rule of ``_set`` (sections merge, values replace)."""
    out = copy.deepcopy(base)
    for section, body in update.items():
        _set(out, section, body)
    return out


def _read_file(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A YAML config and the files it ``extends``, merged in order (bases first)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in chain:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(p.name for p in chain)}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file is a mapping of sections ({', '.join(SECTIONS)}), "
                          f"not a {type(raw).__name__}")
    bases = raw.pop("extends", [])
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = _merge(merged, _read_file(path.parent / str(base), (*chain, path.resolve())))
    return _merge(merged, {k: v for k, v in raw.items() if v is not None})


_REFERENCE = re.compile(r"(?<!\\)\$\{([^{}]*)\}")


def _escape_foreign(value: Any) -> Any:
    """Escape ``${...}`` that names no config key (a shell variable in a ``pipe:`` URL stays as written)."""
    keys = flat_keys()
    if isinstance(value, dict):
        return {k: _escape_foreign(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_foreign(v) for v in value]
    if isinstance(value, str):
        return _REFERENCE.sub(lambda m: m[0] if m[1] in keys else "\\" + m[0], value)
    return value


def load_raw(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """A file (and what it extends) and overrides over the defaults, ``${...}`` resolved, as a dict before type checks."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    raw = _read_file(Path(path)) if path is not None else {}
    for text in overrides:
        _set(raw, *parse_override(text))
    try:
        return OmegaConf.to_container(OmegaConf.create(_escape_foreign(_merge(to_dict(Config()), raw))), resolve=True)
    except OmegaConfBaseException as err:
        raise _config_error(err) from None


def _type_name(tp: Any) -> str:
    literal = typing.get_origin(tp) is Literal
    return f"one of {list(typing.get_args(tp))}" if literal else getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _config_error(err: Exception) -> ConfigError:
    """An OmegaConf error as one line naming the key (the same words whatever OmegaConf's version says)."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    key = getattr(err, "full_key", None) or ""
    known = flat_keys()
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        section = key.rsplit(".", 1)[0] + "." if "." in key else ""
        names = sorted({k[len(section):].split(".")[0] for k in known if k.startswith(section)})
        return ConfigError(f"unknown config key {key} (known: {', '.join(names)})")
    if isinstance(err, ValidationError) and key.split("[")[0] in known:
        tp = known[key.split("[")[0]]
        expected = _type_name(typing.get_args(tp)[0] if "[" in key and typing.get_args(tp) else tp)
        verb = "must be" if expected.startswith("one of") else "expected"
        return ConfigError(f"{key}: {verb} {expected}, got {getattr(err, 'value', None)!r}")
    message = str(getattr(err, "msg", err)).splitlines()[0]
    return ConfigError(f"{key}: {message}" if key else message)


def _structured(raw: dict) -> Config:
    """Type-check a nested dict against the schema (OmegaConf) and resolve ``${...}`` references."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of sections, got {raw!r}")
    try:
        conf = OmegaConf.merge(OmegaConf.structured(Config), _escape_foreign(raw))
        return OmegaConf.to_object(conf)
    except OmegaConfBaseException as err:
        raise _config_error(err) from None


def _check_semantics(cfg: Config) -> Config:
    from espcn_lab.model import check_architecture  # deferred: imports torch
    check_architecture(cfg.model)
    for key, zero_ok in (("data.batch_size", 0), ("optim.learning_rate", 0), ("trainer.ddp_timeout_s", 0), ("run.checkpoint_every_min", 1)):
        if (value := getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1])) < 0 or (value == 0 and not zero_ok):
            raise ConfigError(f"{key}: must be {'>=' if zero_ok else '>'} 0, got {value}")
    if not 0 <= cfg.optim.distill_weight <= 1:
        raise ConfigError(f"optim.distill_weight: must be in [0, 1], got {cfg.optim.distill_weight}")
    if cfg.optim.warmup_steps < 0 or (cfg.optim.warmup_steps and cfg.optim.schedule != "cosine_time"):
        raise ConfigError(f"optim.warmup_steps: must be >= 0, with schedule cosine_time; got {cfg.optim.warmup_steps}")
    if cfg.trainer.max_time is not None:
        max_time_seconds(cfg.trainer.max_time)
    if cfg.optim.schedule == "cosine_time" and cfg.trainer.max_time is None:
        raise ConfigError("optim.schedule=cosine_time: needs trainer.max_time (DD:HH:MM:SS), the budget the rate decays over")
    return cfg


def max_time_seconds(text: str) -> int:
    """Seconds in a ``trainer.max_time`` string ``DD:HH:MM:SS`` (exactly Lightning's Timer form); else ConfigError."""
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", text.strip())
    if match is None:
        raise ConfigError(f"trainer.max_time: expected DD:HH:MM:SS, got {text!r}")
    total = sum(int(g) * k for g, k in zip(match.groups(), (86400, 3600, 60, 1)))  # days, hours, minutes, seconds
    if total <= 0:
        raise ConfigError(f"trainer.max_time: must be more than zero, got {text!r}")
    return total


def from_dict(raw: dict) -> Config:
    """Validate a nested dict into a Config (types, then ranges and model consistency)."""
    return _check_semantics(_structured(raw or {}))


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML file (or start from defaults when ``path`` is None) and apply ``key=value`` overrides."""
    return from_dict(load_raw(path, list(overrides)))


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (YAML/JSON serialisable)."""
    return dataclasses.asdict(cfg)


def check_value(key: str, value: Any) -> Any:
    """Validate one dotted key's value against the schema (as a sweep would set it); raises ConfigError."""
    if key not in flat_keys() and not key.startswith("data.val_dirs."):
        raise ConfigError(f"unknown config key {key}")
    raw: dict = {}
    _set(raw, key, value)
    node: Any = to_dict(_structured(raw))
    for part in key.split("."):
        node = node[part]
    return node
