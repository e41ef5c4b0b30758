"""``fit(cfg)``: one training run — run folder, Trainer, callbacks, loggers, end-of-run measurements.

The run folder ``{run.dir}/{run.name}`` holds ``config.yaml``, ``best.ckpt`` (max ``val/psnr_y``),
``last.ckpt``, ``metrics.csv``, PNG visuals and ``summary.json``. Under ``strategy=ddp`` Lightning
re-executes the launching command once per extra rank; the run name travels to those processes in
``ESPCN_LAB_RUN_NAME`` so every rank writes to the same folder.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import yaml

from espcn_lab.config import Config, to_dict
from espcn_lab.errors import UserError

RUN_NAME_ENV = "ESPCN_LAB_RUN_NAME"


MONITOR = "val/psnr_y"


# Lightning chatter that says nothing about this run: the run folder holds config.yaml before the
# loggers start; the LightningModule's batch hook is meant to win; pytree's deprecation; an ad.
_QUIET_WARNINGS = (".*exists and is not empty.*", ".*overridden `on_after_batch_transfer`.*", ".*LeafSpec.*",
                   ".*does not have many workers.*", ".*IterableDataset.*__len__.*")


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def _quiet_lightning() -> None:
    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoTips())


def _default_run_name() -> str:
    for env, prefix in (("SLURM_JOB_ID", "slurm-"), ("TORCHELASTIC_RUN_ID", "torchrun-")):
        if os.environ.get(env, "none") != "none":  # every node of a launcher-started job agrees on these
            return prefix + os.environ[env]
    return time.strftime("%Y%m%d-%H%M%S")


def resolve_run(cfg: Config) -> tuple[Path, Optional[Path]]:
    """(run folder, checkpoint to resume from or None) for ``run.dir``, ``run.name`` and ``run.resume``."""
    root, resume = Path(cfg.run.dir), cfg.run.resume
    name = cfg.run.name or os.environ.get(RUN_NAME_ENV)
    if resume and resume != "last":
        ckpt = Path(resume)
        if not ckpt.is_file():
            raise UserError(f"run.resume: checkpoint not found: {ckpt}")
        return (root / name if name else ckpt.parent), ckpt
    if resume == "last":
        if name:
            run_dir = root / name
        else:
            runs = sorted((p for p in root.glob("*/last.ckpt")), key=lambda p: p.stat().st_mtime)
            if not runs:
                raise UserError(f"run.resume=last: no run with a last.ckpt under {root}")
            run_dir = runs[-1].parent
        if not (run_dir / "last.ckpt").is_file():
            raise UserError(f"run.resume=last: {run_dir / 'last.ckpt'} does not exist")
        return run_dir, run_dir / "last.ckpt"
    run_dir = root / (name or _default_run_name())
    if (run_dir / "last.ckpt").exists():
        raise UserError(f"{run_dir} already holds a run; pass run.resume=last to continue it or a new run.name")
    return run_dir, None


def wandb_mode(cfg: Config) -> str:
    """online | offline | disabled. WANDB_MODE in the environment wins; auto = online when logged in."""
    env = os.environ.get("WANDB_MODE")
    if env in ("disabled", "offline", "online", "dryrun"):
        return "offline" if env == "dryrun" else env
    if cfg.log.wandb_mode != "auto":
        return cfg.log.wandb_mode
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    return "online" if logged_in else "offline"


def _loggers(cfg: Config, run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    mode = wandb_mode(cfg)
    if mode != "disabled":
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(project=cfg.log.wandb_project, name=run_dir.name, save_dir=str(run_dir),
                                   mode=mode, id=run_dir.name, resume="allow"))
    return loggers


def _callbacks(cfg: Config, run_dir: Path) -> list:
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
    )

    best = ModelCheckpoint(dirpath=str(run_dir), filename="best", monitor=MONITOR, mode="max", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    # last.ckpt: the latest state at every validation, and at a stop (max_time, early stopping). Not
    # `save_last=True` on the callback above: Lightning 2.6 rewrites that file only when the monitored
    # value improves, which made "last" the best-on-validation checkpoint.
    last = ModelCheckpoint(dirpath=str(run_dir), filename="last", monitor=None, save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    stop = EarlyStopping(monitor=MONITOR, mode="max", patience=cfg.optim.early_stop_patience, check_finite=False)
    return [best, last, stop, LearningRateMonitor(logging_interval="epoch")]


def build_trainer(cfg: Config, run_dir: Path):
    """The Lightning Trainer for a config (hardware, precision, loggers, checkpoints)."""
    import lightning as L

    t = cfg.trainer
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_epochs=t.max_epochs, max_steps=t.max_steps, max_time=t.max_time,
        log_every_n_steps=t.log_every_n_steps, gradient_clip_val=t.gradient_clip_val,
        check_val_every_n_epoch=cfg.data.val_every_n_epochs, num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the train stream splits itself; every rank scores all val images
        default_root_dir=str(run_dir), logger=_loggers(cfg, run_dir), callbacks=_callbacks(cfg, run_dir),
        enable_model_summary=False)


def warm_start(module, cfg: Config) -> None:
    """Copy the weights of ``run.init_from`` into the module (same architecture required); optimiser stays fresh."""
    from espcn_lab.checkpoint import load_model

    source = load_model(cfg.run.init_from)
    if source.config.model != cfg.model:
        raise UserError(f"run.init_from: {cfg.run.init_from} is a different network ({source.config.model}) "
                        f"from model.* ({cfg.model})")
    module.model.load_state_dict(source.model.state_dict())


def fit(cfg: Config) -> dict[str, Any]:
    """Train one run from a resolved config; returns the summary (also written to ``summary.json``)."""
    import lightning as L

    from espcn_lab.train.datamodule import ShardDataModule
    from espcn_lab.train.module import ESPCNModule, NonFiniteLossError

    _quiet_lightning()
    run_dir, ckpt_path = resolve_run(cfg)
    datamodule = ShardDataModule(cfg)  # checks shards and validation folders before anything starts
    os.environ[RUN_NAME_ENV] = run_dir.name
    L.seed_everything(cfg.run.seed, workers=True, verbose=False)
    module = ESPCNModule(cfg, datamodule.degradation, nan_check_every=min(10, cfg.trainer.log_every_n_steps))
    if cfg.run.init_from and not ckpt_path:
        warm_start(module, cfg)
    trainer = build_trainer(cfg, run_dir)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt_path and (run_dir / "metrics.csv").exists():  # CSVLogger would delete it: keep each segment
            segment = 1 + len(list(run_dir.glob("metrics.*.csv")))
            (run_dir / "metrics.csv").rename(run_dir / f"metrics.{segment}.csv")
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    for logger in trainer.loggers:
        logger.log_hyperparams(to_dict(cfg))
    status, started = "finished", time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except NonFiniteLossError as err:
        status, message = "stopped_nan", str(err)
    finally:
        os.environ.pop(RUN_NAME_ENV, None)
    from espcn_lab.train.report import finish_run

    summary = finish_run(trainer, module, datamodule, run_dir, status, time.perf_counter() - started)
    if status == "stopped_nan":
        raise UserError(f"{message}; run stopped (see {run_dir / 'summary.json'})")
    return summary
