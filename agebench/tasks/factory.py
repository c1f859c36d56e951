"""Task objects from the `tasks` config group: the one place that knows every task kind, the base tasks
(agebench.tasks.base) and the age heads (agebench.tasks.age_heads), so neither module imports the other's
dispatch."""

from __future__ import annotations

from agebench.data.binning import parse_bins
from agebench.errors import UserError
from agebench.tasks import age_heads
from agebench.tasks.base import TASK_NAMES, AgeClassification, AgeRegression, Classification, Task


def build_tasks(tasks_cfg, race_classes: int | None = None) -> list[Task]:
    """Task objects from the `tasks` config group (`tasks.names` picks which)."""
    names = list(tasks_cfg.names)
    unknown = [n for n in names if n not in TASK_NAMES]
    if unknown or not names:
        raise UserError(f"unknown task(s) {unknown or names}; tasks.names takes a subset of {list(TASK_NAMES)}")
    tasks: list[Task] = []
    for name in names:
        opts = tasks_cfg.get(name, {}) or {}
        if name == "age":
            age_range = tuple(float(v) for v in opts.get("range", (0, 80)))
            head = opts.get("head", "classification")
            if head not in age_heads.ALL_HEADS:
                raise UserError(f"tasks.age.head={head!r}; use one of {', '.join(age_heads.ALL_HEADS)}")
            # distribution / ordinal heads default to one bin per year, so their MAE is against exact ages
            default_bins = "adience8" if head in age_heads.BASE_HEADS else "years"
            spec = opts.get("bins", default_bins)
            bins = parse_bins(default_bins if spec is None else spec, age_range)
            cs = tuple(int(t) for t in opts.get("cs_thresholds", (5,)))
            if head in age_heads.BASE_HEADS and opts.get("decode") is not None:
                raise UserError(f"tasks.age.decode applies to the distribution heads, not head={head}; drop it")
            if head == "classification":
                tasks.append(AgeClassification("age", bins.num_bins, bins=bins, cs_thresholds=cs))
            elif head == "regression":
                loss_kind = opts.get("loss", "l1")
                if loss_kind not in ("l1", "l2"):
                    raise UserError(f"tasks.age.loss={loss_kind!r}: age regression takes l1 or l2")
                tasks.append(AgeRegression("age", 1, bins=bins, age_range=age_range, loss_kind=loss_kind, cs_thresholds=cs))
            else:
                tasks.append(age_heads.build_age_head_task(head, bins, opts, cs))
        else:
            loss_kind = opts.get("loss", "ce")
            if loss_kind not in ("ce", "bce", "mse"):
                raise UserError(f"tasks.{name}.loss={loss_kind!r}; use ce, bce or mse")
            classes = 2 if name == "gender" else int(race_classes or opts.get("classes", 5))
            if loss_kind != "ce" and classes != 2:
                raise UserError(f"tasks.{name}.loss={loss_kind} needs a binary task; use loss=ce")
            tasks.append(Classification(name, classes if loss_kind == "ce" else 1, loss_kind=loss_kind))
    return tasks
