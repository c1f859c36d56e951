"""One typed schema for the values of a composed `agebench train` (or `agebench sweep`) config.

Hydra checks the config's *shape* (unknown keys, missing groups); this module checks its *values*
once, before any fold or trial starts: `trainer.max_epochs=abc`, `data.batch_size=0`, `optim.lr=-1`,
`protocol.n_folds=1` under k-fold, `loss.gamma=1.5`, `sweep.n_trials=abc`, ... Each problem becomes
one line naming the key, the bad value and what is allowed; `check_train_config` raises them all at
once as a UserError, so the user fixes every value in one go and no half-started run writes records.

Why pydantic (v2) rather than Hydra structured configs / dataclasses: the config tree is open-ended
(model families, datasets and experiments add their own keys), so a structured config would have to
describe all of it or be switched off in places; pydantic validates only the values listed here,
ignores the rest (`extra="ignore"`), coerces what OmegaConf hands over ("5" → 5) and reports *every*
failing field with its location in one pass. It is already a dependency of wandb.

Only keys that are present are checked (optional fields default to None), so configs of other
protocols or datasets that lack a key pass; the allowed range of each field is written once, in its
`description`, and that text is what the error line shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from agebench.errors import UserError

# Smallest network input every shipped model family builds at with its default options (lmtcnn,
# levi_hassner take 7; multibranch and lightweight_joint need 16; levi_hassner_reduced checks its own
# larger minimum when it is built). Below it a fold would fail deep inside a convolution.
MIN_IMAGE_SIZE = 16
MAX_SEED = 2**32 - 1   # lightning's seed_everything range (outside it, it silently picks a random seed)


def _limit_batches(value: float | None) -> float | None:
    """Lightning's limit_*_batches: a count (an integer ≥ 0) or a fraction in [0, 1]."""
    if value is not None and value != int(value) and not 0 <= value <= 1:
        raise ValueError("not a batch count or a fraction in [0, 1]")
    return value


def _field(description: str, default: Any = None, **constraints):
    return Field(default=default, description=description, **constraints)


LimitBatches = Annotated[float | None, AfterValidator(_limit_batches)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _at_most(low: str, high: str, message: str):
    """A check across two fields of a section: `low` ≤ `high` when both are set, else a ValueError
    with `message` (formatted with the section's values), shown as the whole line."""
    def check(section):
        a, b = getattr(section, low), getattr(section, high)
        if a is not None and b is not None and a > b:
            raise ValueError(message.format(**dict(section)))
        return section

    return model_validator(mode="after")(check)


class DataValues(_Section):
    batch_size: int | None = _field("an integer ≥ 1", ge=1)
    num_workers: int | None = _field("an integer ≥ 0", ge=0)
    image_size: int | None = _field(f"an integer ≥ {MIN_IMAGE_SIZE} (the smallest input the models build at)",
                                    ge=MIN_IMAGE_SIZE)
    load_size: int | None = _field("an integer ≥ data.image_size (images are cropped from it), or null", ge=1)
    n_subjects: int | None = _field("an integer ≥ 1", ge=1)
    images_per_subject: int | None = _field("an integer ≥ 1", ge=1)
    seed: int | None = _field(f"an integer in [0, {MAX_SEED}]", ge=0, le=MAX_SEED)

    _load_at_least_image = _at_most("image_size", "load_size", "data.load_size={load_size} is smaller than "
                                    "data.image_size={image_size}; make it ≥ image_size")


class TrainerValues(_Section):
    max_epochs: int | None = _field("an integer ≥ 1", ge=1)
    min_epochs: int | None = _field("an integer ≥ 1 (≤ trainer.max_epochs), or null", ge=1)
    log_every_n_steps: int | None = _field("an integer ≥ 1", ge=1)
    threads: int | None = _field("an integer ≥ 1, or null (torch's default)", ge=1)
    gradient_clip_val: float | None = _field("a number ≥ 0, or null", ge=0)
    limit_train_batches: LimitBatches = _field("a batch count ≥ 0 or a fraction in [0, 1], or null", ge=0)
    limit_val_batches: LimitBatches = _field("a batch count ≥ 0 or a fraction in [0, 1], or null", ge=0)
    limit_test_batches: LimitBatches = _field("a batch count ≥ 0 or a fraction in [0, 1], or null", ge=0)

    _min_below_max = _at_most("min_epochs", "max_epochs", "trainer.min_epochs={min_epochs} exceeds "
                              "trainer.max_epochs={max_epochs}; lower min_epochs or raise max_epochs")


def _names(keys) -> str:
    keys = sorted(keys)
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} or {keys[-1]}"


class OptimValues(_Section):
    # The allowed names are the entries of the config's own catalogues (optim.optimizers /
    # optim.schedulers, built by agebench/training/optim.py), so `+optim.optimizers.nadam={...}` makes
    # `optim.name=nadam` valid without touching this schema.
    name: str | None = None
    lr: float | None = _field("a number > 0", gt=0)
    weight_decay: float | None = _field("a number ≥ 0", ge=0)
    momentum: float | None = _field("a number in [0, 1]", ge=0, le=1)
    scheduler: str | None = None
    optimizers: dict[str, Any] | None = None
    schedulers: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _names_in_catalogue(self):
        for key, catalogue in (("name", "optimizers"), ("scheduler", "schedulers")):
            value, entries = getattr(self, key), getattr(self, catalogue)
            if value is not None and entries is not None and value not in entries:
                raise ValueError(f"optim.{key}={value!r}: use {_names(entries)} (the entries of optim.{catalogue}; "
                                 f"add one with +optim.{catalogue}.{value}='{{_target_: ...}}')")
        return self


class LossValues(_Section):
    weighting: Literal["fixed", "uncertainty"] | None = _field("fixed or uncertainty")
    gamma: float | None = _field("a number in [0, 1], or null", ge=0, le=1)
    weights: dict[str, Annotated[float, Field(ge=0)]] | None = _field("a mapping of task to a number ≥ 0")


class ProtocolValues(_Section):
    name: str | None = None
    n_folds: int | None = _field("an integer ≥ 2 for protocol=kfold (≥ 1 otherwise), or null", ge=1)
    folds: list[Annotated[int, Field(ge=0)]] | None = _field("a list of fold indices ≥ 0, or null (all folds)")
    repeats: int | None = _field("a whole number ≥ 1 (repeats of the k folds, each with its own split seed)", ge=1)
    val_fraction: float | None = _field("a number in (0, 1)", gt=0, lt=1)
    test_fraction: float | None = _field("a number in (0, 1)", gt=0, lt=1)

    @model_validator(mode="after")
    def _kfold_needs_two(self):
        if self.name == "kfold" and self.n_folds is not None and self.n_folds < 2:
            raise ValueError(f"protocol.n_folds={self.n_folds}: k-fold needs at least 2 folds "
                             f"(use protocol=holdout for one split)")
        if self.repeats not in (None, 1) and self.name not in (None, "kfold"):
            raise ValueError(f"protocol.repeats={self.repeats} repeats k-fold cross-validation; protocol={self.name} "
                             f"has fixed splits: use protocol=kfold, or protocol.repeats=1")
        return self


class EarlyStoppingValues(_Section):
    mode: Literal["min", "max"] | None = _field("min or max")
    patience: int | None = _field("an integer ≥ 0", ge=0)


class ProfileValues(_Section):
    latency_iters: int | None = _field("an integer ≥ 1", ge=1)


class SamplerValues(_Section):
    seed: int | None = _field("an integer ≥ 0, or null", ge=0)


class SweepValues(_Section):
    n_trials: int | None = _field("an integer ≥ 1 (the study's total budget), or null for a whole grid", ge=1)
    max_failures: int | None = _field("an integer ≥ 1, or null (never stop)", ge=1)
    worker: int | None = _field("an integer ≥ 0", ge=0)
    workers_per_node: int | None = _field("an integer ≥ 1 (workers side by side on one machine), or null", ge=1)
    heartbeat_s: float | None = _field("a number of seconds > 0", gt=0)
    stale_after_s: float | None = _field("a number of seconds > 0", gt=0)
    sampler: SamplerValues | None = None


class TrainConfigValues(_Section):
    """The values of a composed train config that the run depends on (keys absent from `cfg` pass)."""

    seed: int | None = _field(f"an integer in [0, {MAX_SEED}]", ge=0, le=MAX_SEED)
    data: DataValues | None = None
    trainer: TrainerValues | None = None
    optim: OptimValues | None = None
    loss: LossValues | None = None
    protocol: ProtocolValues | None = None
    early_stopping: EarlyStoppingValues | None = None
    profile: ProfileValues | None = None
    sweep: SweepValues | None = None   # only in `agebench sweep` configs


def _plain(cfg) -> tuple[dict, list[str]]:
    """The schema's sections of `cfg` as plain resolved containers, and one line per section that
    does not resolve (a bad interpolation)."""
    from omegaconf import OmegaConf

    out, problems = {}, []
    for key in TrainConfigValues.model_fields:
        if key not in cfg:
            continue
        try:
            node = cfg[key]
            if OmegaConf.is_config(node):
                node = OmegaConf.to_container(node, resolve=True)
        except UserError:
            raise
        except Exception as err:  # an interpolation that does not resolve
            problems.append(f"{key}: {str(err).splitlines()[0]}")
            continue
        if key == "sweep" and isinstance(node, Mapping):
            node = {k: v for k, v in node.items() if k in SweepValues.model_fields}
        out[key] = node
    return out, problems


def _schema_at(loc: tuple):
    """(the schema field at `loc` or None, the section model it holds or None), walking nested sections."""
    model: Any = TrainConfigValues
    info = None
    for part in loc:
        if model is None or part not in model.model_fields:
            return info, None
        info = model.model_fields[part]
        annotation = info.annotation
        nested = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = nested[0] if nested else None
    return info, model


def _line(error: dict) -> str:
    loc = tuple(p for p in error["loc"] if isinstance(p, (str, int)))
    info, section = _schema_at(loc)
    if error["type"] == "value_error" and (not loc or section is not None):
        return str(error.get("ctx", {}).get("error", error["msg"]))  # a whole-section check: its own message
    allowed = info.description if info is not None and info.description else error["msg"]
    return f"{'.'.join(str(p) for p in loc)}={error['input']!r}: use {allowed}"


def validate_train_config(cfg) -> list[str]:
    """One line per invalid value of a composed train (or sweep) config; empty when all are valid."""
    values, problems = _plain(cfg)
    try:
        TrainConfigValues.model_validate(values)
    except ValidationError as err:
        for error in err.errors(include_url=False):
            line = _line(error)
            if line not in problems:
                problems.append(line)
    return problems


def check_train_config(cfg) -> None:
    """Raise one UserError listing every invalid value ('; '-joined); do nothing when all are valid."""
    problems = validate_train_config(cfg)
    if problems:
        raise UserError("; ".join(problems))


__all__ = ["validate_train_config", "check_train_config", "TrainConfigValues", "MIN_IMAGE_SIZE"]
