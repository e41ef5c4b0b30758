"""Where a run lives and what it may continue from: ``run.dir``, ``run.name``, ``run.resume`` and the
checks that refuse a checkpoint before anything of the run folder is touched.

A refused resume (a damaged file, a model file, another network or optimiser, a weight average the config drops) is
one ``UserError`` line and leaves the run folder byte-identical: ``fit`` writes nothing until these checks have passed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

from espcn_lab.config import Config, ConfigError, from_dict, to_dict
from espcn_lab.errors import UserError

RUN_NAME_ENV = "ESPCN_LAB_RUN_NAME"

# What the saved training state is made for: the weights fit one network, the optimiser state one
# optimiser, the scheduler state one schedule. Everything else (epochs, rates, data) may change on resume.
FIXED_ON_RESUME = ("model", "optim.name", "optim.schedule")


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


def _pick(raw: dict, key: str) -> Any:
    for part in key.split("."):
        raw = raw.get(part, {}) if isinstance(raw, dict) else {}
    return raw


def _flat(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for sub, item in value.items() for k, v in _flat(item, f"{key}.{sub}").items()}
    return {key: value}


def resume_differences(saved: dict, cfg: Config) -> list[str]:
    """``key is A in the checkpoint, B now`` for every ``FIXED_ON_RESUME`` key that differs."""
    try:
        saved = to_dict(from_dict(saved))  # the saved config with today's defaults filled in
    except ConfigError:
        pass  # a config from another version: compare what it says
    now = to_dict(cfg)
    out = []
    for key in FIXED_ON_RESUME:
        old, new = _flat(_pick(saved, key), key), _flat(_pick(now, key), key)
        out += [f"{k} is {old.get(k)!r} in the checkpoint, {new.get(k)!r} now" for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)]
    return out


def check_resume(cfg: Config, ckpt_path: Path) -> None:
    """Refuse a checkpoint this config cannot continue (UserError, one line) before anything is written."""
    from espcn_lab.checkpoint import read_training_checkpoint
    from espcn_lab.model import build_model

    try:
        ckpt = read_training_checkpoint(ckpt_path)
    except UserError as err:
        raise UserError(f"run.resume: {err}; resume from a last.ckpt or best.ckpt that fit wrote "
                        "(run.resume=PATH), or start a new run (from a model file: run.init_from=PATH)") from None
    differences = resume_differences(ckpt["espcn_lab"].get("config", {}), cfg)
    if differences:
        network = any(d.startswith("model.") for d in differences)
        way_out = "start a new run.name" + ("" if network else f" with run.init_from={ckpt_path} to keep the weights")
        raise UserError(f"run.resume: {ckpt_path} cannot continue with this config: {'; '.join(differences)} "
                        f"(a resumed run keeps its network and optimiser: drop the change, or {way_out})")
    if "current_model_state" in ckpt and cfg.optim.ema_decay == 0:  # Lightning would go on from the average
        decay = _pick(ckpt["espcn_lab"].get("config", {}), "optim.ema_decay")
        raise UserError(f"run.resume: {ckpt_path} holds a moving average of the weights (optim.ema_decay={decay}) and "
                        "this config has none: resume with optim.ema_decay > 0, or start a new run.name with "
                        f"run.init_from={ckpt_path} to go on from the average")
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        build_model(cfg.model).load_state_dict(state)
    except RuntimeError as err:
        raise UserError(f"run.resume: {ckpt_path}: its weights do not fit model.* "
                        f"({str(err).strip().splitlines()[-1].strip()[:160]})") from None
