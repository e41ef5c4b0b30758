"""Reading configs: YAML files, ``extends:`` chains and dotted ``key=value`` overrides into the schema (OmegaConf).

Unknown keys and wrong types fail at load time with one line naming the key (``ConfigError``, the same words whatever
OmegaConf's version says); ``${model.scale}`` interpolates. A file may start from others (``extends:``, a path or list
relative to it); in files and overrides, a mapping merges into its section, any other value (``data.val_dirs`` too)
replaces it. The only place YAML configs are read.
"""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from espcn_lab.config.schema import SECTIONS, Config, check_semantics, flat_keys, to_dict
from espcn_lab.errors import ConfigError


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


def from_dict(raw: dict) -> Config:
    """Validate a nested dict into a Config (types, then ranges and model consistency)."""
    return check_semantics(_structured(raw or {}))


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML file (or start from defaults when ``path`` is None) and apply ``key=value`` overrides."""
    return from_dict(load_raw(path, list(overrides)))


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
