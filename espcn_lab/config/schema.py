"""The config schema: every key, its type and default (dataclasses), and which values are valid together.

The key names are a contract with sweeps, docs and users (``flat_keys`` lists them for ``fit --help`` and the sweep
checks). ``check_semantics`` holds the rules a type cannot say (ranges, keys that need each other); what ``model.*``
means is ``espcn_lab.model``'s. Reading files and overrides into this schema is ``espcn_lab.config.load``'s.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

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
    # the pixel loss: mse (the paper's, what PSNR measures), l1, or charbonnier sqrt(d^2 + eps^2) (an L1 smooth at 0);
    # the distillation term below uses the same one
    loss: Literal["mse", "l1", "charbonnier"] = "mse"
    charbonnier_eps: float = 0.001  # on the [0, 1] pixel scale
    # the loss over only the outputs whose receptive field lies inside the patch (unpadded convolutions, fewer MACs):
    # with 17x17 patches and 5-3-3 kernels 72% of the outputs see zero padding, whole test images almost none
    valid_loss: bool = False
    # distillation: loss = (1 - w) * loss to the HR patch + w * loss to a frozen teacher's output (w = distill_weight)
    distill_from: Union[str, list[str]] = ""  # x2|x3|x4, .ckpt, .safetensors (this scale, any width/depth); several: mean
    distill_weight: float = 0.5
    distill_self_ensemble: bool = False  # the teacher averages its 8 flipped/rotated passes (8x its cost)
    # an exponential moving average of the weights, ema = d * ema + (1 - d) * w after every step (BasicSR's 0.999):
    # validation, best/last checkpoints and the saved model use the average; 0: off
    ema_decay: float = 0.0


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


# key -> (lowest valid value, whether it is valid) and, for keys with a ceiling, (highest, whether it is valid): the
# ranges a type cannot say
_RANGES = {
    "data.batch_size": (0, False), "optim.learning_rate": (0, False), "optim.charbonnier_eps": (0, False),
    "optim.distill_weight": (0, True, 1, True), "optim.ema_decay": (0, True, 1, False), "optim.warmup_steps": (0, True),
    "trainer.ddp_timeout_s": (0, False), "run.checkpoint_every_min": (0, True),
}


def check_semantics(cfg: Config) -> Config:
    """The rules across keys and the ranges of ``_RANGES``; raises ConfigError naming the key. Returns ``cfg``."""
    from espcn_lab.model import check_architecture  # deferred: imports torch
    check_architecture(cfg.model)
    for key, (low, low_ok, *ceiling) in _RANGES.items():
        section, name = key.split(".")
        if (value := getattr(getattr(cfg, section), name)) < low or (value == low and not low_ok):
            raise ConfigError(f"{key}: must be {'>=' if low_ok else '>'} {low}, got {value}")
        if ceiling and (value > ceiling[0] or (value == ceiling[0] and not ceiling[1])):
            raise ConfigError(f"{key}: must be in [{low}, {ceiling[0]}{']' if ceiling[1] else ')'}, got {value}")
    if cfg.optim.warmup_steps and cfg.optim.schedule != "cosine_time":
        raise ConfigError(f"optim.warmup_steps: needs schedule cosine_time; got {cfg.optim.warmup_steps} "
                          f"with {cfg.optim.schedule}")
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


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (YAML/JSON serialisable)."""
    return dataclasses.asdict(cfg)
