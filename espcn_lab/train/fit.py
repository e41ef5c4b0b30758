"""``fit(cfg)``: one training run — run folder, Trainer, callbacks, loggers, end-of-run measurements.

The run folder ``{run.dir}/{run.name}`` holds ``config.yaml``, ``best.ckpt`` (max ``val/psnr_y``),
``last.ckpt``, ``metrics.csv``, PNG visuals and ``summary.json``. Under ``strategy=ddp`` Lightning
re-executes the launching command once per extra rank; the run name travels to those processes in
``ESPCN_LAB_RUN_NAME`` so every rank writes to the same folder.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import yaml

from espcn_lab.config import Config, to_dict
from espcn_lab.errors import Interrupted, RunFailed, UserError, write_error
from espcn_lab.train.resume import RUN_NAME_ENV, check_resume, resolve_run

if TYPE_CHECKING:
    from espcn_lab.train.signals import StopRequest

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


def _strategy(t):
    """``trainer.strategy``; the DDP family waits ``trainer.ddp_timeout_s`` in a collective (torch: 30 min)."""
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

    if isinstance(t.strategy, str) and t.strategy in StrategyRegistry and StrategyRegistry[t.strategy]["strategy"] is DDPStrategy:
        return DDPStrategy(**StrategyRegistry[t.strategy]["init_params"], timeout=timedelta(seconds=t.ddp_timeout_s))
    return t.strategy


def build_trainer(cfg: Config, run_dir: Path, request: Optional[StopRequest] = None, progress: str = "bar"):
    """The Lightning Trainer for a config (hardware, precision, loggers, checkpoints written whole, the stop on
    SIGINT/SIGTERM of ``request``); ``progress`` is ``bar`` (Lightning's) or ``lines`` (steps, ETA)."""
    import lightning as L

    from espcn_lab.train.callbacks import run_callbacks
    from espcn_lab.train.files import AtomicCheckpointIO
    from espcn_lab.train.signals import StopRequest

    t = cfg.trainer
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=_strategy(t),
        precision=t.precision, max_epochs=t.max_epochs, max_steps=t.max_steps, max_time=t.max_time,
        log_every_n_steps=t.log_every_n_steps, gradient_clip_val=t.gradient_clip_val,
        check_val_every_n_epoch=cfg.data.val_every_n_epochs, num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the train stream splits itself; every rank scores all val images
        default_root_dir=str(run_dir), logger=_loggers(cfg, run_dir), plugins=[AtomicCheckpointIO()],
        callbacks=run_callbacks(cfg, run_dir, request or StopRequest(), progress),
        enable_progress_bar=progress == "bar", enable_model_summary=False)


def warm_start(module, cfg: Config) -> None:
    """Copy the weights of ``run.init_from`` into the module (same architecture required); optimiser stays fresh."""
    from espcn_lab.checkpoint import load_model, plain_config

    try:
        source = load_model(cfg.run.init_from)
    except UserError as err:
        raise UserError(f"run.init_from: {err}") from None
    if source.config.model != plain_config(cfg).model:  # a model file is always the plain (folded) network
        raise UserError(f"run.init_from: {cfg.run.init_from} is a different network ({source.config.model}) "
                        f"from model.* ({cfg.model})")
    # into a re-parameterised network the weights become its k x k branches; the others start at zero
    module.model.load_state_dict(source.model.state_dict(), strict=cfg.model.reparam == "none")


def _write_run_folder(cfg: Config, run_dir: Path, resuming: bool) -> None:
    """``config.yaml``, and the metrics of the segment before a resume kept as ``metrics.N.csv``."""
    from espcn_lab.files import write_bytes_atomic

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".*.partial-*"):  # what a write killed half-way left (never the file itself)
            stale.unlink(missing_ok=True)
        write_bytes_atomic(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        if resuming and (run_dir / "metrics.csv").exists():  # CSVLogger would delete it: keep each segment
            segment = 1 + len(list(run_dir.glob("metrics.*.csv")))
            (run_dir / "metrics.csv").rename(run_dir / f"metrics.{segment}.csv")
    except (OSError, UserError) as err:
        raise UserError(f"run.dir: cannot write the run folder {run_dir} "
                        f"({err.strerror if isinstance(err, OSError) else err})") from None


# what torch.distributed (gloo, NCCL) says when another rank died, hung past trainer.ddp_timeout_s or vanished
_PEER_LOST = re.compile(r"gloo|nccl|connection (closed|reset|refused)|broken pipe|timed? ?out|pair closure", re.I)


def _lost_peer(err: BaseException, world_size: int) -> Optional[str]:
    """A short reason when a collective failed because another rank of a multi-process run is gone, else None."""
    import torch.distributed as dist

    text = " ".join(str(err).split())
    if world_size > 1 and (isinstance(err, dist.DistError) or _PEER_LOST.search(text)):
        text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text)  # the C++ source location
        return text.split(". ")[0][:160] or type(err).__name__
    return None


def _outcome(err: BaseException, request: StopRequest, trainer,
             run_dir: Path) -> tuple[str, Optional[Exception], int, str]:
    """(status, error to raise, signal number, note) for an exception that ended ``trainer.fit``; a bug re-raises."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from espcn_lab.train.files import cannot_write
    from espcn_lab.train.module import NonFiniteLossError
    from espcn_lab.train.signals import STATUS, StopTraining

    if isinstance(err, StopTraining):
        return STATUS[err.signum], None, err.signum, ""
    if isinstance(err, SIGTERMException):  # Lightning's own handler, in the moment before training starts
        return "terminated", None, signal.SIGTERM, ""
    if isinstance(err, NonFiniteLossError):
        return "stopped_nan", UserError(f"{err}; run stopped (see {run_dir / 'summary.json'})"), 0, ""
    if isinstance(err, UserError):  # no pair could be read from the shards, a checkpoint could not be written
        if trainer.global_step:
            err = type(err)(f"{err}; the run stopped at step {trainer.global_step} (last.ckpt holds the last state "
                            "saved whole)")  # OutOfRoom stays OutOfRoom
        return "failed", err, 0, ""
    if request.signum:  # the signal also ended a reader process (it was sent to the whole process group)
        return STATUS[request.signum], None, request.signum, f" ({(str(err).strip().splitlines() or [''])[0][:160]})"
    step = trainer.global_step
    if cannot_write(err):  # a full or failing disk exits 1 (OutOfRoom), a read-only or denied folder 2
        return "failed", write_error(err, f"cannot write the run folder {run_dir}: {cannot_write(err)}; the run "
                                          f"stopped at step {step} (last.ckpt is the last state saved whole)"), 0, ""
    if _lost_peer(err, trainer.world_size):
        return "failed", RunFailed(f"rank {trainer.global_rank}: lost the other ranks at step {step} "
                                   f"({_lost_peer(err, trainer.world_size)}); resume with run.resume=last"), 0, ""
    raise err


def _saved(last: Path) -> str:
    """What a stopped run left to continue from."""
    from espcn_lab.checkpoint import read_training_checkpoint

    try:
        return f"{last} holds step {read_training_checkpoint(last)['global_step']}: continue with run.resume=last"
    except UserError:
        return "no checkpoint was saved yet: start it again"


def fit(cfg: Config, progress: str = "bar") -> dict[str, Any]:
    """Train one run from a resolved config; returns the summary (also written to ``summary.json``).

    Nothing is written before the input is checked (shards, validation sets, the checkpoint to resume
    from). A stop by SIGINT/SIGTERM saves ``last.ckpt`` and raises ``Interrupted`` after the summary; bad
    data found while training, a folder that refuses writes or a lost rank end with one line too.
    """
    import lightning as L
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from espcn_lab.train.datamodule import ShardDataModule
    from espcn_lab.train.distill import load_teacher
    from espcn_lab.train.files import cannot_write
    from espcn_lab.train.module import ESPCNModule
    from espcn_lab.train.report import finish_run
    from espcn_lab.train.signals import StopRequest

    _quiet_lightning()
    run_dir, ckpt_path = resolve_run(cfg)
    datamodule = ShardDataModule(cfg)  # checks shards and validation sets before anything starts
    if ckpt_path:
        check_resume(cfg, ckpt_path)  # a refusal leaves the run folder as it is
    L.seed_everything(cfg.run.seed, workers=True, verbose=False)
    module = ESPCNModule(cfg, datamodule.degradation, nan_check_every=min(10, cfg.trainer.log_every_n_steps))
    if cfg.run.init_from and not ckpt_path:
        warm_start(module, cfg)
    module.set_teacher(load_teacher(cfg, datamodule.degradation))  # optim.distill_from, checked before any write
    os.environ[RUN_NAME_ENV] = run_dir.name
    with StopRequest() as request:
        trainer = build_trainer(cfg, run_dir, request, progress)
        if trainer.is_global_zero:
            _write_run_folder(cfg, run_dir, resuming=ckpt_path is not None)
        for logger in trainer.loggers:
            logger.log_hyperparams(to_dict(cfg))
        outcome, started = ("finished", None, 0, ""), time.perf_counter()
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        except (Exception, SIGTERMException) as err:  # SIGTERMException is a SystemExit
            outcome = _outcome(err, request, trainer, run_dir)
        finally:
            os.environ.pop(RUN_NAME_ENV, None)
            datamodule.close()
        status, error, signum, note = outcome
        try:
            summary = finish_run(trainer, module, datamodule, run_dir, status, time.perf_counter() - started,
                                 error=str(error or ""))
        except (OSError, UserError) as err:  # summary.json or the visuals could not be written
            if isinstance(err, OSError) and not cannot_write(err):
                raise
            error = error or (err if isinstance(err, UserError) else
                              UserError(f"cannot write the run folder {run_dir}: {cannot_write(err)}"))
    if error is not None:
        raise error
    if signum:
        rank = f"rank {trainer.global_rank}: " if trainer.global_rank else ""
        raise Interrupted(f"{rank}{status} by {signal.Signals(signum).name}{note}; {_saved(run_dir / 'last.ckpt')}", signum)
    return summary
