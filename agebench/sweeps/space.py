"""Search spaces in the spelling of Hydra's Optuna sweeper, parsed by Hydra's own override parser.

A study yaml's `params` maps an `agebench train` override key to a value:

| spelling                                  | Optuna distribution                  | as a grid            |
|-------------------------------------------|--------------------------------------|----------------------|
| `choice(a, b, c)` or `a,b,c`              | categorical                          | a, b, c              |
| `range(start, stop[, step])`              | int/float with step, stop EXCLUDED   | start, start+step, … |
| `interval(low, high)`                     | float in [low, high]                 | —                    |
| `int(interval(low, high))`                | int in [low, high]                   | —                    |
| `tag(log, interval(low, high))`           | float on a log scale                 | —                    |
| `tag(log, int(interval(low, high)))`      | int on a log scale                   | —                    |
| anything else (`3`, `[2,1]`, `adamw`)     | not swept: a fixed override          | fixed                |

`range` follows Hydra's (and Python's) convention everywhere in agebench: `range(1, 4)` is 1, 2, 3
— note that hydra-optuna-sweeper included the stop value. Choices may be group options
(`tasks: choice(age, age_gender)`), strings (`tasks.age.bins: choice(uniform:3, uniform:5)`) or
lists (`model.width: choice([1,1], [2,1])`, sampled as the strings "[1,1]", "[2,1]").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agebench.errors import UserError


@dataclass
class Param:
    """One swept override key: its Optuna distribution and how a sampled value becomes an override."""

    key: str
    spelling: str
    kind: str                      # categorical | int | float
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] = field(default_factory=list)      # categorical: Optuna's values
    choice_text: dict[Any, str] = field(default_factory=dict)  # categorical value → override value text

    def distribution(self):
        import optuna.distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution(self.choices)
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return d.FloatDistribution(float(self.low), float(self.high), step=self.step, log=self.log)

    @property
    def discrete(self) -> bool:
        return self.kind == "categorical" or self.step is not None

    def grid_values(self) -> list[Any]:
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None:
            raise UserError(f"sweep.params.{self.key}: {self.spelling} is continuous and cannot be a grid; "
                            f"use choice(...) or range(start, stop, step)")
        values, v, n = [], self.low, 0
        while v <= self.high + 1e-12 * max(1.0, abs(self.high)):
            values.append(int(v) if self.kind == "int" else round(v, 12))
            n += 1
            v = self.low + n * self.step
        return values

    def suggest(self, trial, as_grid: bool = False):
        if as_grid or self.kind == "categorical":
            values = self.grid_values() if as_grid else self.choices
            return trial.suggest_categorical(self.key, values)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def override(self, value) -> str:
        """`key=value` for a sampled value, in override syntax Hydra parses back to that value."""
        if self.kind == "categorical" and value in self.choice_text:
            return f"{self.key}={self.choice_text[value]}"
        return f"{self.key}={_number_text(value)}"

    def values_for_check(self) -> list[Any]:
        """Values whose overrides a validation composes: every choice, or both ends of a range."""
        if self.kind == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.kind == "int" else [float(self.low), float(self.high)]


def _number_text(value) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass
class SearchSpace:
    params: list[Param]
    fixed: list[str]               # non-sweep entries of `params`, applied to every trial as overrides

    @property
    def names(self) -> list[str]:
        return [p.key for p in self.params]

    def grid(self) -> dict[str, list[Any]]:
        return {p.key: p.grid_values() for p in self.params}

    def grid_size(self) -> int:
        n = 1
        for values in self.grid().values():
            n *= len(values)
        return n

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        return [p.override(values[p.key]) for p in self.params if p.key in values]

    def as_multirun(self) -> list[str]:
        """The space as `agebench train -m` sweep overrides (discrete spaces only)."""
        out = list(self.fixed)
        for p in self.params:
            if not p.discrete:
                p.grid_values()  # raises the UserError that explains why
            out.append(f"{p.key}={p.spelling}")
        return out


def parse_space(params: Mapping[str, Any] | None) -> SearchSpace:
    """Parse a study yaml's `params` mapping; a malformed entry is a UserError naming the key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    swept, fixed = [], []
    for key, value in (params or {}).items():
        key = str(key)
        text = _value_text(value)
        try:
            override = parser.parse_override(f"{key}={text}")
        except Exception as err:
            raise UserError(f"sweep.params.{key}: cannot parse {text!r} ({_first_line(err)}); use choice(a, b), "
                            f"range(start, stop, step), interval(low, high), int(interval(...)) or "
                            f"tag(log, interval(...))") from None
        if not override.is_sweep_override():
            fixed.append(f"{key}={text}")
            continue
        swept.append(_param_from_override(key, text, override))
    return SearchSpace(swept, fixed)


def _value_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)) or hasattr(value, "keys") or hasattr(value, "__iter__"):
        from omegaconf import OmegaConf

        container = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        return _literal(container)
    return _number_text(value)


def _literal(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    return _number_text(value) if not isinstance(value, str) else value


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _param_from_override(key: str, text: str, override) -> Param:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer

    value = override.value()
    tags = set(getattr(value, "tags", set()) or set())
    unknown = tags - {"log"}
    if unknown:
        raise UserError(f"sweep.params.{key}: unknown tag(s) {sorted(unknown)} in {text!r}; only tag(log, ...) is understood")
    log = "log" in tags
    if getattr(value, "shuffle", False):
        raise UserError(f"sweep.params.{key}: shuffle(...) has no meaning for a sampler; drop it")
    if isinstance(value, ChoiceSweep):
        if log:
            raise UserError(f"sweep.params.{key}: tag(log, ...) applies to intervals, not to choice(...)")
        choices, texts = [], {}
        for item in value.list:
            encoded = Transformer.encode(item)      # str / int / float / bool / None; lists become "[1,1]"
            if encoded in texts:
                continue
            choices.append(encoded)
            texts[encoded] = Transformer.str(item)  # escaped so Hydra parses it back to `item`
        if not choices:
            raise UserError(f"sweep.params.{key}: {text!r} has no choices")
        return Param(key, text, "categorical", choices=choices, choice_text=texts)
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise UserError(f"sweep.params.{key}: {text!r} is empty (range's stop is excluded)")
        is_float = any(isinstance(x, float) for x in (value.start, value.stop, value.step))
        step = float(value.step) if is_float else int(value.step)
        if step <= 0:
            raise UserError(f"sweep.params.{key}: {text!r} needs a positive step")
        return Param(key, text, "float" if is_float else "int", low=values[0], high=values[-1], step=step, log=log)
    if isinstance(value, IntervalSweep):
        start, end = value.start, value.end
        if start is None or end is None or not start < end:
            raise UserError(f"sweep.params.{key}: {text!r} needs low < high")
        if log and start <= 0:
            raise UserError(f"sweep.params.{key}: tag(log, ...) needs a positive lower bound, got {start}")
        is_int = isinstance(start, int) and isinstance(end, int)
        return Param(key, text, "int" if is_int else "float", low=start, high=end, log=log)
    raise UserError(f"sweep.params.{key}: {text!r} ({type(value).__name__}) is not a search space agebench "
                    f"understands; use choice, range or interval")
