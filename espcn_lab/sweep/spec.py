"""Sweep files: W&B sweep YAML -> validated Sweep; ``--check``; a trial's arguments and command line.

One file serves both worlds: ``wandb sweep sweeps/x.yaml && wandb agent ID`` runs it on a W&B
server, and ``espcn-lab sweep sweeps/x.yaml`` runs it locally (``espcn_lab.sweep_run``). Parameters
are config keys (``model.activation``) or a config section whose values are mappings
(``model: {values: [{features: [64, 32], kernels: [5, 3, 3]}, ...]}``) for keys that must change
together; a W&B agent passes such a value as ``model={'features': [64, 32], ...}``, which
``config.apply_overrides`` merges into the section. Commands expand W&B's macros the way its agent
does (``wandb/sdk/launch/sweeps/utils.py``): ``${args_no_hyphens}`` -> ``key=value`` with Python's
``str`` of the value.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from espcn_lab.config import ConfigError, check_value, flat_keys, load_config
from espcn_lab.errors import UserError
from espcn_lab.sweep.space import Param, parse_parameters

METHODS = ("grid", "random", "bayes")


TOP_LEVEL_KEYS = {"program", "method", "metric", "parameters", "command", "name", "description", "project",
                  "entity", "early_terminate", "run_cap", "controller", "job", "image_uri", "scheduler"}


ARG_MACROS = {"args", "args_no_hyphens", "args_no_equals", "args_no_boolean_flags", "args_json",
              "args_json_file", "args_append_hydra", "args_override_hydra"}


RESERVED_KEYS = ("run.dir", "run.name")  # the sweep places each trial's run folder itself


MAX_CHECKED_CONFIGS = 512


_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file; ``config_path`` and ``fixed_args`` come from its ``fit`` command."""

    path: Path
    raw: dict
    method: str
    metric: str
    goal: str
    params: tuple[Param, ...]
    command: tuple[str, ...]
    config_path: Path
    fixed_args: tuple[str, ...]


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a W&B sweep file's structure; raises ConfigError/UserError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with method, metric, parameters, command")
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown sweep key(s) {unknown} (W&B knows: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    method = raw.get("method")
    if method not in METHODS:
        raise ConfigError(f"{path}: method must be one of {list(METHODS)}, got {method!r}")
    metric = raw.get("metric") or {"name": "val/psnr_y", "goal": "maximize"}
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        raise ConfigError(f"{path}: metric must be {{name: val/psnr_y, goal: maximize}}, got {metric!r}")
    if metric.get("goal", "minimize") not in ("maximize", "minimize"):
        raise ConfigError(f"{path}: metric.goal must be maximize or minimize, got {metric['goal']!r}")
    try:
        params = parse_parameters(raw.get("parameters"))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    command, config_path, fixed = _parse_command(path, raw)
    return Sweep(path, raw, method, metric["name"], metric.get("goal", "minimize"), params, command,
                 config_path, fixed)


def _parse_command(path: Path, raw: dict) -> tuple[tuple[str, ...], Path, tuple[str, ...]]:
    """Find ``fit CONFIG`` and the args macro in the command; W&B's default command has neither."""
    command = raw.get("command")
    usage = "command must run `espcn-lab fit CONFIG ${args_no_hyphens}` (a list)"
    if not isinstance(command, list) or not all(isinstance(c, (str, int, float)) for c in command):
        raise ConfigError(f"{path}: {usage}, got {command!r}")
    command = [str(c) for c in command]
    for chunk in command:
        name = chunk[2:-1] if chunk.startswith("${") and chunk.endswith("}") else None
        if name is not None and name not in ARG_MACROS | {"env", "interpreter", "program"}:
            raise ConfigError(f"{path}: command: unknown macro {chunk} (W&B expands {sorted(ARG_MACROS)} "
                              "and ${env}, ${interpreter}, ${program})")
    if "${program}" in command and not raw.get("program"):
        raise ConfigError(f"{path}: command uses ${{program}} but the sweep has no 'program'")
    if "${args_no_hyphens}" not in command:
        raise ConfigError(f"{path}: {usage}: parameters reach fit as key=value only through ${{args_no_hyphens}}")
    if "fit" not in command or command.index("fit") + 1 >= len(command):
        raise ConfigError(f"{path}: {usage}")
    i = command.index("fit")
    config = command[i + 1]
    if config.startswith("${") or "=" in config:
        raise ConfigError(f"{path}: {usage}: no config file after 'fit'")
    config_path = Path(_ENVVAR.sub(lambda m: os.environ.get(m[1], m[1]), config))
    if not config_path.is_file():
        raise ConfigError(f"{path}: command: config file {config} not found (relative paths start at {Path.cwd()})")
    fixed = tuple(c for c in command[i + 2:] if "=" in c and not c.startswith("${"))
    executable = resolve_executable(expand_command(command, raw.get("program"), [], None)[0])
    if executable is None:
        raise ConfigError(f"{path}: command: program {command[0]!r} not found on PATH")
    return tuple(command), config_path, fixed


def resolve_executable(name: str) -> Optional[str]:
    """PATH lookup that also finds console scripts beside this interpreter (an unactivated venv)."""
    found = shutil.which(name)
    beside = Path(sys.executable).parent / name
    return found or (str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None)


def format_args(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """Trial parameters in W&B's order (sorted names), as (key, value) pairs."""
    return sorted(values.items())


def expand_command(command: list[str] | tuple[str, ...], program: Optional[str],
                   args: list[tuple[str, Any]], json_file: Optional[Path]) -> list[str]:
    """Expand W&B macros into an argv list, exactly as its agent formats them (``f"{key}={value}"``)."""
    flags = [f"{k}={v}" for k, v in args]
    as_dict = dict(args)
    macros = {
        "env": ["/usr/bin/env"] if os.name != "nt" else [],
        "interpreter": [sys.executable],
        "program": [program] if program else [],
        "args": ["--" + f for f in flags],
        "args_no_hyphens": flags,
        "args_no_equals": [x for k, v in args for x in (f"--{k}", str(v))],
        "args_no_boolean_flags": [f"--{k}" if v is True else f"--{k}={v}" for k, v in args if v is not False],
        "args_json": [json.dumps(as_dict)],
        "args_json_file": [str(json_file)] if json_file else [],
        "args_append_hydra": ["+" + f for f in flags],
        "args_override_hydra": ["++" + f for f in flags],
    }
    argv: list[str] = []
    for chunk in command:
        chunk = _ENVVAR.sub(lambda m: os.environ.get(m[1], m[1]), str(chunk))
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += macros.get(chunk[2:-1], [])
        else:
            argv.append(chunk)
    return argv


def flatten_value(name: str, value: Any) -> dict[str, Any]:
    """``('model', {'features': [32]})`` -> ``{'model.features': [32]}``; config keys stay whole."""
    if isinstance(value, dict) and name not in flat_keys():
        return {k: v for key, sub in value.items() for k, v in flatten_value(f"{name}.{key}", sub).items()}
    return {name: value}


def _check_key(sweep: Sweep, name: str, value: Any) -> None:
    keys = flat_keys()
    for key, sub in flatten_value(name, value).items():
        if key in RESERVED_KEYS:
            raise ConfigError(f"{sweep.path}: parameter {key} is set by the sweep itself (each trial's run folder)")
        if key not in keys and not key.startswith("data.val_dirs."):
            close = difflib.get_close_matches(key, list(keys), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{sweep.path}: parameter {name}: {key} is not a config key{hint}")
        try:
            check_value(key, sub)
        except ConfigError as err:
            raise ConfigError(f"{sweep.path}: parameter {name}: {err}") from None


def check_sweep(sweep: Sweep, overrides: list[str] = (), seed: int = 0) -> int:
    """Validate every parameter value and whole trial configs; returns how many configs were built.

    Grid: every point (a seeded sample of MAX_CHECKED_CONFIGS when larger). Random/bayes: every
    combination of each parameter's check values (all categories, range ends, far quantiles).
    """
    for key in overrides:
        if key.split("=", 1)[0].lstrip("-") in RESERVED_KEYS:
            raise UserError(f"override {key}: the sweep sets run.dir/run.name itself (use --out)")
    clash = sorted(swept_keys(sweep) & {o.split("=", 1)[0].lstrip("-") for o in overrides})
    if clash:
        raise UserError(f"override {clash[0]} is a swept parameter of {sweep.path}; remove one of them")
    per_param = []
    for param in sweep.params:
        try:
            values = param.grid_values() if sweep.method == "grid" else param.check_values()
        except ConfigError as err:
            raise ConfigError(f"{sweep.path}: {err}") from None
        for value in values:
            _check_key(sweep, param.name, value)
        per_param.append(values)
    combos = list(itertools.islice(itertools.product(*per_param), 100_000))
    if len(combos) > MAX_CHECKED_CONFIGS:
        combos = random.Random(seed).sample(combos, MAX_CHECKED_CONFIGS)
    for combo in combos:
        values = dict(zip([p.name for p in sweep.params], combo))
        try:
            args = trial_args(sweep, values, list(overrides), Path("runs"), "check")
            load_config(sweep.config_path, trial_config_overrides(sweep, args))
        except ConfigError as err:
            shown = ", ".join(f"{k}={v}" for k, v in format_args(values))
            raise ConfigError(f"{sweep.path}: trial {shown} gives an invalid config: {err}") from None
    return len(combos)


def swept_keys(sweep: Sweep) -> set[str]:
    """The config keys the sweep's parameters set."""
    return {k for p in sweep.params for v in p.check_values() for k in flatten_value(p.name, v)}


def trial_args(sweep: Sweep, values: dict[str, Any], overrides: list[str], trials_dir: Path,
               trial_name: str) -> list[tuple[str, Any]]:
    """What ``${args_no_hyphens}`` carries for a local trial: sweep values, overrides, run folder.

    W&B offline logging unless the sweep or an override sets ``log.wandb_mode`` (``wandb sync`` later).
    """
    pairs = [tuple(o.lstrip("-").split("=", 1)) for o in overrides]
    fixed = {o.split("=", 1)[0] for o in sweep.fixed_args}
    set_mode = "log.wandb_mode" in swept_keys(sweep) | fixed | {k for k, _ in pairs}
    mode = [] if set_mode else [("log.wandb_mode", "offline")]
    return [*mode, *format_args(values), *pairs, ("run.dir", str(trials_dir)), ("run.name", trial_name)]


def trial_config_overrides(sweep: Sweep, args: list[tuple[str, Any]]) -> list[str]:
    """The override list fit ends up applying (fixed command args, then the macro's args)."""
    return [*sweep.fixed_args, *(f"{k}={v}" for k, v in args)]


def trial_id(values: dict[str, Any]) -> str:
    """Stable identity of a trial: a hash of its parameter values (re-runs skip finished ids)."""
    blob = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return "trial-" + hashlib.sha1(blob.encode()).hexdigest()[:10]


def fingerprint(sweep: Sweep, overrides: list[str]) -> str:
    """What makes two runs of a sweep the same sweep (the out folder refuses any other)."""
    keys = ("method", "metric", "parameters", "command", "program")
    blob = json.dumps({"sweep": {k: sweep.raw.get(k) for k in keys}, "overrides": list(overrides)},
                      sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
