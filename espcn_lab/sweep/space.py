"""W&B sweep parameter syntax -> values: grid points, optuna suggestions, and values worth validating.

Covers W&B's sweep schema: ``value``; ``values`` (+ ``probabilities``); bare ``min``/``max`` (both ints
-> int_uniform, else uniform); ``distribution`` in constant, categorical, categorical_w_probabilities,
int_uniform, uniform, log_uniform / q_log_uniform / inv_log_uniform (bounds in log space, as W&B),
log_uniform_values / q_log_uniform_values / inv_log_uniform_values (bounds as values), q_uniform,
normal, q_normal, log_normal, q_log_normal, beta, q_beta; and nested ``parameters`` (a dict-valued
parameter). Quantised values are ints when ``q`` is an int, as in W&B.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from espcn_lab.errors import ConfigError

_BOUNDED = {"uniform", "q_uniform", "log_uniform", "q_log_uniform", "inv_log_uniform",
            "log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"}


_QUANTILE = {"normal": ("mu", "sigma"), "q_normal": ("mu", "sigma"), "log_normal": ("mu", "sigma"),
             "q_log_normal": ("mu", "sigma"), "beta": ("a", "b"), "q_beta": ("a", "b")}


_DEFAULTS = {"mu": 0.0, "sigma": 1.0, "a": 1.0, "b": 1.0, "q": 1.0}


_KEYS = {
    "constant": {"value"}, "categorical": {"values"},
    "categorical_w_probabilities": {"values", "probabilities"}, "int_uniform": {"min", "max"},
    **{name: {"min", "max", "q"} if name.startswith("q_") else {"min", "max"} for name in _BOUNDED},
    **{name: set(keys) | ({"q"} if name.startswith("q_") else set()) for name, keys in _QUANTILE.items()},
}


GRID_KINDS = ("constant", "categorical", "int_uniform", "q_uniform")


@dataclass(frozen=True)
class Param:
    """One sweep parameter: ``name`` (a config key or section), W&B ``kind`` and its settings."""

    name: str
    kind: str
    spec: dict
    children: tuple["Param", ...] = ()

    def grid_values(self) -> list[Any]:
        """The values W&B's grid search walks (q_uniform: ``arange(min, max, q)``, max excluded)."""
        if self.kind == "nested":
            return [dict(zip(self._child_keys(), combo))
                    for combo in itertools.product(*(c.grid_values() for c in self.children))]
        if self.kind == "constant":
            return [self.spec["value"]]
        if self.kind == "categorical":
            return list(self.spec["values"])
        if self.kind == "int_uniform":
            return list(range(self.spec["min"], self.spec["max"] + 1))
        if self.kind == "q_uniform":
            lo, hi, q = self.spec["min"], self.spec["max"], self.spec["q"]
            return [self._quantize(lo + i * q) for i in range(max(0, math.ceil((hi - lo) / q)))]
        raise ConfigError(f"parameter {self.name}: a {self.kind} parameter has no grid; "
                          f"grid search takes {', '.join(GRID_KINDS)} (use method: random or bayes)")

    def suggest(self, trial: Any) -> Any:
        """Draw this parameter's value from an ``optuna.Trial`` (categories by index: any YAML value)."""
        s, kind = self.spec, self.kind
        if kind == "nested":
            return dict(zip(self._child_keys(), (c.suggest(trial) for c in self.children)))
        if kind == "constant":
            return s["value"]
        if kind == "categorical":
            return s["values"][trial.suggest_categorical(self.name, list(range(len(s["values"]))))]
        if kind == "int_uniform":
            return trial.suggest_int(self.name, s["min"], s["max"])
        if kind in _BOUNDED:
            lo, hi = self._value_bounds()
            return self._quantize(trial.suggest_float(self.name, lo, hi, log="log" in kind))
        return self.from_quantile(trial.suggest_float(self.name, 0.0, 1.0))

    def check_values(self) -> list[Any]:
        """Values worth validating: every category, the ends of ranges, far quantiles of open ones."""
        if self.kind == "nested":
            return [dict(zip(self._child_keys(), combo))
                    for combo in itertools.product(*(c.check_values() for c in self.children))]
        if self.kind in ("constant", "categorical", "int_uniform", "q_uniform"):
            values = self.grid_values() if self.kind != "int_uniform" else [self.spec["min"], self.spec["max"]]
            return values if self.kind != "q_uniform" else sorted({values[0], values[-1]} if values else set())
        if self.kind == "categorical_w_probabilities":
            return list(self.spec["values"])
        if self.kind in _BOUNDED:
            return [self._quantize(v) for v in self._value_bounds()]
        return [self.from_quantile(u) for u in (0.001, 0.5, 0.999)]

    def from_quantile(self, u: float) -> Any:
        """Map ``u`` in [0, 1] through the distribution's inverse CDF (weighted categories too)."""
        import scipy.stats as stats

        s, u = self.spec, min(max(u, 1e-12), 1 - 1e-12)
        if self.kind == "categorical_w_probabilities":
            weights = [p / sum(s["probabilities"]) for p in s["probabilities"]]
            cumulative = list(itertools.accumulate(weights))
            return s["values"][next((i for i, c in enumerate(cumulative) if u <= c), len(weights) - 1)]
        if "normal" in self.kind and "log" not in self.kind:
            value = stats.norm.ppf(u, loc=s["mu"], scale=s["sigma"])
        elif "log_normal" in self.kind:
            value = stats.lognorm.ppf(u, s=s["sigma"], scale=math.exp(s["mu"]))
        else:
            value = stats.beta.ppf(u, s["a"], s["b"])
        return self._quantize(float(value))

    def _child_keys(self) -> list[str]:
        return [c.name.rsplit(".", 1)[-1] for c in self.children]

    def _value_bounds(self) -> tuple[float, float]:
        lo, hi = self.spec["min"], self.spec["max"]
        if self.kind in ("log_uniform", "q_log_uniform"):
            return math.exp(lo), math.exp(hi)
        if self.kind == "inv_log_uniform":
            return math.exp(-hi), math.exp(-lo)
        return lo, hi

    def _quantize(self, value: float) -> Any:
        if not self.kind.startswith("q_"):
            return float(value)
        q = self.spec["q"]
        out = round(value / q) * q
        return int(out) if isinstance(q, int) else float(out)


def _number(name: str, key: str, value: Any, integer: bool = False) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        hint = " (YAML reads 1e-4 as text: write 1.0e-4)" if isinstance(value, str) else ""
        raise ConfigError(f"parameter {name}: {key} must be {'an integer' if integer else 'a number'}, "
                          f"got {value!r}{hint}")


def _infer_kind(name: str, spec: dict) -> str:
    if "distribution" in spec:
        kind = spec["distribution"]
        if kind not in _KEYS:
            raise ConfigError(f"parameter {name}: unknown distribution {kind!r} (W&B knows: {', '.join(sorted(_KEYS))})")
        return kind
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "min" in spec and "max" in spec:
        both_int = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
        return "int_uniform" if both_int else "uniform"
    raise ConfigError(f"parameter {name}: needs value, values, min/max or a distribution, got {spec!r}")


def _check_spec(name: str, kind: str, spec: dict) -> None:
    if kind in ("categorical", "categorical_w_probabilities"):
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise ConfigError(f"parameter {name}: values must be a non-empty list, got {spec['values']!r}")
    if kind == "categorical_w_probabilities":
        probs = spec["probabilities"]
        if not isinstance(probs, list) or len(probs) != len(spec["values"]):
            raise ConfigError(f"parameter {name}: probabilities needs one entry per value")
        for p in probs:
            _number(name, "probabilities", p)
    for key in ("min", "max", "q", "mu", "sigma", "a", "b"):
        if key in spec:
            _number(name, key, spec[key], integer=kind == "int_uniform" and key in ("min", "max"))
    if "min" in spec and spec["min"] > spec["max"]:
        raise ConfigError(f"parameter {name}: min {spec['min']} is above max {spec['max']}")
    if kind.endswith("_values") and spec["min"] <= 0:
        raise ConfigError(f"parameter {name}: {kind} needs min > 0, got {spec['min']}")
    if spec.get("q", 1) <= 0 or spec.get("sigma", 1) < 0:
        raise ConfigError(f"parameter {name}: q must be > 0 and sigma >= 0")


def parse_param(name: str, spec: Any) -> Param:
    """Validate one W&B parameter entry and return it as a Param; raises ConfigError naming it."""
    if not isinstance(spec, dict):
        raise ConfigError(f"parameter {name}: expected a mapping such as {{values: [...]}}, got {spec!r}")
    if "parameters" in spec:
        if set(spec) != {"parameters"} or not isinstance(spec["parameters"], dict) or not spec["parameters"]:
            raise ConfigError(f"parameter {name}: nested parameters take only a non-empty 'parameters' mapping")
        children = tuple(parse_param(f"{name}.{k}", v) for k, v in sorted(spec["parameters"].items()))
        return Param(name, "nested", {}, children)
    kind = _infer_kind(name, spec)
    allowed = _KEYS[kind] | {"distribution"}
    extra = sorted(set(spec) - allowed)
    missing = sorted(k for k in _KEYS[kind] if k not in spec and k not in _DEFAULTS)
    if extra or missing:
        problem = f"unexpected {extra}" if extra else f"missing {missing}"
        raise ConfigError(f"parameter {name}: {kind} takes {sorted(_KEYS[kind])}, {problem}")
    full = {**{k: _DEFAULTS[k] for k in _KEYS[kind] if k in _DEFAULTS}, **spec}
    _check_spec(name, kind, full)
    return Param(name, kind, full)


def parse_parameters(parameters: Any) -> tuple[Param, ...]:
    """The sweep's ``parameters`` mapping -> Params sorted by name (W&B's order)."""
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError("sweep: 'parameters' must be a non-empty mapping of config keys")
    return tuple(parse_param(str(name), spec) for name, spec in sorted(parameters.items()))
