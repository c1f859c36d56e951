"""What a trained model is scored on in `agebench eval`: the target dataset's config at the run's
image sizes, and the model's tasks restated for the target (age classes summed into the target's age
groups when it only has groups in another scheme)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agebench.errors import UserError


def target_data_config(run_cfg: DictConfig, data_cfg: DictConfig | None, data_overrides: list[str]) -> DictConfig:
    """The data config to test on, at the run's image sizes.

    No `data=` given, or the run's own dataset: the run's data config with the user's `data.*`
    overrides on top (a moved data.root, say). Another dataset: its composed config, decoded at the
    run's input size and load size so the network sees images prepared as in training."""
    run_data = run_cfg.data
    if data_cfg is None or str(data_cfg.name) == str(run_data.name):
        merged = OmegaConf.merge(run_data, OmegaConf.from_dotlist([o.split(".", 1)[1] for o in data_overrides]))
        return merged
    target = OmegaConf.create(OmegaConf.to_container(data_cfg, resolve=False))
    OmegaConf.set_struct(target, False)
    target.image_size = int(run_data.image_size)
    target.load_size = int(run_data.load_size) if run_data.get("load_size") else None
    return OmegaConf.create(OmegaConf.to_container(target, resolve=True))


def same_data(a: DictConfig, b: DictConfig) -> bool:
    plain = lambda c: json.dumps(OmegaConf.to_container(c, resolve=True), sort_keys=True, default=str)  # noqa: E731
    return plain(a) == plain(b)


@dataclass
class AgeMapping:
    """Model age classes → the target's age groups: probability of group j = Σ p_i over model bins i
    whose centre falls in group j."""

    model_bins: object
    target_bins: object
    assign: np.ndarray   # target group per model bin

    @classmethod
    def between(cls, model_bins, target_bins, dataset: str) -> AgeMapping:
        assign = target_bins.assign(model_bins.centres)
        empty = [target_bins.labels[j] for j in range(target_bins.num_bins) if not (assign == j).any()]
        if empty:
            raise UserError(f"the model's age bins ({model_bins.name}) cannot be mapped onto data={dataset}'s age "
                            f"groups ({target_bins.name}): no model bin falls in group(s) {', '.join(empty)}; "
                            f"evaluate a model trained with tasks.age.bins={target_bins.name}, or on a dataset "
                            f"with exact ages")
        return cls(model_bins, target_bins, assign)

    def __call__(self, output):
        """Raw model output (N, model bins) → log-probabilities over the target's groups."""
        import torch

        probs = output.float().softmax(-1)
        index = torch.as_tensor(self.assign, dtype=torch.long).expand_as(probs)
        grouped = torch.zeros(len(probs), self.target_bins.num_bins).scatter_add_(1, index, probs)
        return grouped.clamp_min(1e-8).log()


def evaluation_tasks(tasks, dataset, target_name: str):
    """(tasks to score on the target, AgeMapping or None); one clear error when the target cannot
    score the model's tasks."""
    from agebench.tasks.base import AgeClassification, missing_tasks

    missing = missing_tasks(tasks, dataset.records)
    if missing:
        raise UserError(f"data={target_name} has no {' or '.join(missing)} labels, but the model predicts "
                        f"{'+'.join(t.name for t in tasks)}; evaluate on a dataset that carries them")
    out, mapping = [], None
    for task in tasks:
        if task.name == "race" and dataset.race_names and task.num_outputs not in (1, len(dataset.race_names)):
            raise UserError(f"the model predicts {task.num_outputs} race classes, data={target_name} has "
                            f"{len(dataset.race_names)} ({', '.join(dataset.race_names)}); race cannot be compared")
        native = dataset.native_age_bins
        groups_only = task.name == "age" and native is not None and dataset.records["age"].isna().all()
        if groups_only and isinstance(task, AgeClassification) and task.bins.intervals != native.intervals:
            mapping = AgeMapping.between(task.bins, native, target_name)
            out.append(AgeClassification("age", native.num_bins, bins=native))
        else:
            out.append(task)
    return out, mapping


def race_by_name(model_names, target_names, targets: np.ndarray, run_dataset: str, target_name: str):
    """The target's race labels in the model's class order, mapped by class name (MORPH's Black is index 0,
    UTKFace's White is): (labels, note). A target class the model does not know leaves its faces unscored (−1)
    and is named in the note; no class in common, or a model whose record does not name its classes evaluated
    on another dataset, is one line."""
    target_names = [str(n) for n in (target_names or ())]
    if model_names is None:
        if run_dataset == target_name or not target_names:
            return targets, None
        raise UserError(f"the run's records do not name its race classes (trained before agebench recorded them), "
                        f"so race on data={target_name} ({', '.join(target_names)}) cannot be matched by name; "
                        f"retrain the run, or evaluate on its own dataset")
    model_names = [str(n) for n in model_names]
    if not target_names or target_names == model_names:
        return targets, None
    index = {name.casefold(): i for i, name in enumerate(model_names)}
    perm = np.array([index.get(name.casefold(), -1) for name in target_names], dtype=np.float32)
    if (perm < 0).all():
        raise UserError(f"the model's race classes ({', '.join(model_names)}) share no name with data={target_name}'s "
                        f"({', '.join(target_names)}); race cannot be compared")
    labels = np.asarray(targets, dtype=np.float32)
    known = labels >= 0
    mapped = np.full_like(labels, -1.0)
    mapped[known] = perm[labels[known].astype(np.int64)]
    unknown = [n for n, p in zip(target_names, perm, strict=True) if p < 0]
    note = (f"race mapped by class name onto the model's ({', '.join(model_names)})"
            + (f"; faces of {', '.join(unknown)} ({int(((mapped < 0) & known).sum())}) are not scored: the model "
               f"has no such class" if unknown else ""))
    return mapped, note
