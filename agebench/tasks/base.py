"""Task definitions: what each head predicts, its loss and its metrics.

A task turns the record table into a float32 target array, scores a head's raw output with its loss
(masking rows whose label is missing, so multi-source data never fills a label it lacks), and computes
its metrics over a whole evaluation set. The model knows only `num_outputs`; the LightningModule knows
only `loss` and `metrics`; neither knows which task it is.

Targets are float32 arrays of shape (N, 2) for age — column 0 the bin index (-1 missing), column 1 the
age in years (NaN missing) — and (N, 1) for gender and race (-1 missing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from agebench.data.binning import AgeBins
from agebench.errors import UserError

TASK_NAMES = ("age", "gender", "race")


def zero_loss(output: torch.Tensor) -> torch.Tensor:
    # keeps the graph connected when a batch has no labelled row for this task (multi-source data)
    return output.sum() * 0.0


def labelled(output: torch.Tensor, target: torch.Tensor) -> tuple | None:
    """(output, class index, target) of the rows whose class (column 0) is known; None when none is."""
    valid = target[:, 0] >= 0
    if not valid.any():
        return None
    return output[valid], target[valid, 0].long(), target[valid]


def labelled_ages(output: torch.Tensor, target: torch.Tensor, centres) -> tuple | None:
    """The rows of an age batch that carry a bin: (their output as float, their bin index, their age in
    years — the exact age where the dataset gives one, else the bin's centre); None when no row does."""
    rows = labelled(output, target)
    if rows is None:
        return None
    output, cls, target = rows
    years = target[:, 1]
    centres = torch.as_tensor(centres, dtype=torch.float32, device=output.device)
    return output.float(), cls, torch.where(torch.isnan(years), centres[cls], years.float())


def age_error_metrics(pred: torch.Tensor, truth: torch.Tensor, cs_thresholds) -> dict[str, float]:
    """MAE, mean signed error (`bias`: predicted − true) and CS(θ) (`cs{θ}`, the fraction within θ years)
    of decoded years against true years: the age metrics every age head reports."""
    err = pred.float() - truth.float()
    out = {"mae": err.abs().mean().item(), "bias": err.mean().item()}
    for theta in cs_thresholds:
        out[f"cs{theta}"] = (err.abs() <= theta).float().mean().item()
    return out


@dataclass
class Task:
    name: str
    num_outputs: int
    output_kind = "softmax"  # how the raw outputs read (models.heads.OUTPUT_KINDS); not a dataclass field

    def head_spec(self):
        """What a model needs of this task's head (`agebench.models.heads.HeadSpec`)."""
        from agebench.models.heads import HeadSpec

        return HeadSpec(self.name, int(self.num_outputs), self.output_kind)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError

    def class_probabilities(self, output: torch.Tensor) -> torch.Tensor | None:
        """(N, classes) probabilities of the head's classes, for calibration and risk–coverage
        (agebench.results.uncertainty); None for a head that gives no distribution (regression)."""
        return None

    def predict(self, output: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """A numeric prediction per row (class index or years) for prediction files and plots."""
        raise NotImplementedError


@dataclass
class AgeClassification(Task):
    """Age over bins, softmax + cross-entropy. MAE uses the posterior expectation of bin centres,
    measured against the exact age where the dataset gives one and the bin centre otherwise."""

    bins: AgeBins = None  # type: ignore[assignment]
    cs_thresholds: tuple[int, ...] = (5,)

    def loss(self, output, target):
        rows = labelled(output, target)
        return zero_loss(output) if rows is None else F.cross_entropy(rows[0], rows[1])

    def predict(self, output):
        return output.argmax(dim=1)

    def class_probabilities(self, output):
        return output.float().softmax(dim=1)

    def years(self, output: torch.Tensor) -> torch.Tensor:
        """The decoded age: the posterior expectation of bin centres (what MAE measures)."""
        return output.float().softmax(dim=1) @ torch.as_tensor(self.bins.centres, dtype=torch.float32)

    def metrics(self, output, target):
        rows = labelled_ages(output, target, self.bins.centres)
        if rows is None:
            return {}
        output, cls, truth = rows
        top2 = output.topk(min(2, output.shape[1]), dim=1).indices
        pred = top2[:, 0]
        return {
            "top1": (pred == cls).float().mean().item(),
            "top2": (top2 == cls[:, None]).any(dim=1).float().mean().item(),
            "one_off": ((pred - cls).abs() <= 1).float().mean().item(),
            **age_error_metrics(self.years(output), truth, self.cs_thresholds),
        }


@dataclass
class AgeRegression(Task):
    """Age in years from one output, trained on a normalised target with L1 or L2 loss.

    Metrics: MAE, CS(θ) (fraction within θ years, `cs{θ}`), and — when bins are configured — top-1 and
    one-off after binning the predicted age, so regression and classification heads share a table."""

    bins: AgeBins | None = None
    age_range: tuple[float, float] = (0.0, 80.0)
    loss_kind: str = "l1"
    cs_thresholds: tuple[int, ...] = (5,)
    output_kind = "value"

    @property
    def _mid(self) -> float:
        return (self.age_range[0] + self.age_range[1]) / 2.0

    @property
    def _half(self) -> float:
        return max((self.age_range[1] - self.age_range[0]) / 2.0, 1e-6)

    def years(self, output: torch.Tensor) -> torch.Tensor:
        return output[:, 0] * self._half + self._mid

    def loss(self, output, target):
        years = target[:, 1]
        valid = ~torch.isnan(years)
        if not valid.any():
            return zero_loss(output)
        pred = output[valid, 0]
        goal = (years[valid] - self._mid) / self._half
        return F.l1_loss(pred, goal) if self.loss_kind == "l1" else F.mse_loss(pred, goal)

    def predict(self, output):
        return self.years(output)

    def metrics(self, output, target):
        years = target[:, 1]
        valid = ~torch.isnan(years)
        if not valid.any():
            return {}
        pred, truth = self.years(output[valid].float()), years[valid]
        out = age_error_metrics(pred, truth, self.cs_thresholds)
        if self.bins is not None:
            cls = target[valid, 0].long()
            pred_cls = torch.as_tensor(self.bins.assign(pred.detach().cpu().numpy()))
            known = cls >= 0
            if known.any():
                out["top1"] = (pred_cls[known] == cls[known]).float().mean().item()
                out["one_off"] = ((pred_cls[known] - cls[known]).abs() <= 1).float().mean().item()
        return out


@dataclass
class Classification(Task):
    """Gender or race. `loss_kind`: ce (softmax), bce (one logit, binary) or mse (one output regressed
    to 0/1, the joint-regression model of seed 003)."""

    loss_kind: str = "ce"

    @property
    def output_kind(self) -> str:
        return {"ce": "softmax", "bce": "sigmoid"}.get(self.loss_kind, "value")

    def loss(self, output, target):
        rows = labelled(output, target)
        if rows is None:
            return zero_loss(output)
        output, cls, _ = rows
        if self.loss_kind == "ce":
            return F.cross_entropy(output, cls)
        if self.loss_kind == "bce":
            return F.binary_cross_entropy_with_logits(output[:, 0], cls.float())
        return F.mse_loss(output[:, 0], cls.float())

    def class_probabilities(self, output):
        if self.loss_kind == "ce":
            return output.float().softmax(dim=1)
        if self.loss_kind == "bce":
            p = torch.sigmoid(output.float()[:, 0])
            return torch.stack([1 - p, p], dim=1)
        return None  # mse: a regressed 0/1 is no probability

    def predict(self, output):
        if self.loss_kind == "ce":
            return output.argmax(dim=1)
        threshold = 0.0 if self.loss_kind == "bce" else 0.5
        return (output[:, 0] > threshold).long()

    def metrics(self, output, target):
        rows = labelled(output, target)
        if rows is None:
            return {}
        return {"acc": (self.predict(rows[0].float()) == rows[1]).float().mean().item()}


def targets_for(tasks: list[Task], records: pd.DataFrame, native_age_bins: AgeBins | None = None) -> dict[str, np.ndarray]:
    """float32 target arrays per task from a record table (see module docstring for the layout).

    Datasets that give only age groups (Adience, FairFace) carry `age_group` indices into their native
    scheme `native_age_bins`; a classification head must then use that scheme, and a regression head
    regresses the group centres (stated in the run record's notes)."""
    out: dict[str, np.ndarray] = {}
    for task in tasks:
        if task.name == "age":
            bins = getattr(task, "bins", None)
            years = records["age"].to_numpy(dtype=np.float64).copy()
            group = records["age_group"].to_numpy(dtype=np.int64)
            only_group = np.isnan(years) & (group >= 0)
            if only_group.any():
                if getattr(task, "needs_exact_ages", False):
                    raise UserError(f"tasks.age.head={task.head.name} needs exact ages, and this dataset gives age "
                                    f"groups only; use tasks.age.head=classification (or regression)")
                if native_age_bins is None:
                    raise ValueError("records carry age groups but the dataset declared no native scheme")
                years_from_groups = native_age_bins.centres[group[only_group]]
                if isinstance(task, AgeClassification) and bins.intervals != native_age_bins.intervals:
                    raise UserError(
                        f"this dataset gives age groups ({native_age_bins.name}) not exact ages; "
                        f"set tasks.age.bins={native_age_bins.name}"
                    )
                years_for_bins = years.copy()
                years_for_bins[only_group] = years_from_groups
                cls = bins.assign(years_for_bins) if bins is not None else np.full(len(years), -1)
                if bins is not None and bins.intervals == native_age_bins.intervals:
                    cls[only_group] = group[only_group]
                if isinstance(task, AgeRegression):
                    years[only_group] = years_from_groups
            else:
                cls = bins.assign(years) if bins is not None else np.full(len(years), -1)
            out["age"] = np.stack([cls.astype(np.float32), years.astype(np.float32)], axis=1)
        else:
            out[task.name] = records[task.name].to_numpy(dtype=np.float32)[:, None]
    return out


def missing_tasks(tasks: list[Task], records: pd.DataFrame) -> list[str]:
    """Tasks for which no record carries a label (the dataset cannot train them)."""
    from agebench.data.filtering import carried_tasks  # the one label rule (has_label)

    names = [task.name for task in tasks]
    carried = set(carried_tasks(records, names))
    return [name for name in names if name not in carried]
