"""The LightningModule: shared trunk → task heads, a weighted multi-task loss, metrics per task.

Batches arrive as uint8 NHWC; `on_after_batch_transfer` crops, flips and normalises them on the
device. Validation/test outputs are gathered over the epoch so every metric is exact over the whole
set (not an average of batch averages).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn as nn

from agebench.data.augment import center_crop, random_crop_flip, to_float_nchw
from agebench.errors import DivergedError, UserError


def loss_weights(task_names: list[str], loss_cfg) -> dict[str, float]:
    """Per-task weights: γ for age+gender (L = γ·L_gender + (1−γ)·L_age), else `loss.weights`."""
    gamma = loss_cfg.get("gamma")
    weights = {name: float((loss_cfg.get("weights") or {}).get(name, 1.0)) for name in task_names}
    if gamma is not None and len(task_names) > 1:
        if sorted(task_names) != ["age", "gender"]:
            raise UserError(f"loss.gamma weighs age against gender only, not {task_names}; use loss.weights.<task> for three tasks")
        gamma = float(gamma)
        if not 0.0 <= gamma <= 1.0:
            raise UserError(f"loss.gamma={gamma} must lie in [0, 1]")
        weights = {"gender": gamma, "age": 1.0 - gamma}
    return weights


class MultiTaskModule(pl.LightningModule):
    def __init__(self, model: nn.Module, tasks, loss_cfg, optim_cfg, image_size: int, max_epochs: int,
                 seed: int = 0, oversample: bool = False, channels_last: bool = False):
        super().__init__()
        self.model = model
        self.tasks = {t.name: t for t in tasks}
        self.weights = loss_weights(list(self.tasks), loss_cfg)
        self.uncertainty = str(loss_cfg.get("weighting", "fixed")) == "uncertainty"
        if self.uncertainty:  # learned log-variances s_t: L = Σ exp(−s_t)·L_t + s_t
            self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))
        self.optim_cfg = optim_cfg
        self.image_size = int(image_size)
        self.max_epochs = int(max_epochs)
        self.seed = int(seed)
        self.oversample = bool(oversample)
        self.channels_last = bool(channels_last)
        self.aux_weights = dict(getattr(model, "aux_loss_weights", {}) or {})
        self._aug_generator = torch.Generator()
        self._eval_outputs: dict[str, list] = {}
        self._reset_train_sums()
        self.last_metrics: dict[str, dict[str, float]] = {}
        self.test_predictions: dict[str, torch.Tensor] = {}

    # ---- data on the device -------------------------------------------------------------------
    def on_train_epoch_start(self):
        # Every random draw of an epoch is a function of (seed, epoch): augmentation from its own generator
        # (here), data order from the sampler's set_epoch, dropout and other global-RNG draws from the reseed
        # at the epoch's first batch. A fold resumed from epoch k's checkpoint then equals an uninterrupted one.
        self._aug_generator.manual_seed(self.seed * 100_003 + self.current_epoch)
        self._reset_train_sums()

    def on_train_batch_start(self, batch, batch_idx):
        if batch_idx == 0:  # after the loader's iterator is made: creating it draws from the global RNG, and
            # a resumed run creates its iterators at other points than an uninterrupted one
            torch.manual_seed(self.seed * 7_919 + self.current_epoch)

    def on_after_batch_transfer(self, batch, dataloader_idx: int = 0):
        images, targets = batch
        if self.trainer is not None and self.trainer.training:
            images = random_crop_flip(images, self.image_size, self._aug_generator)
        elif self._oversampling:
            from agebench.data.augment import ten_crop

            return ten_crop(to_float_nchw(images, self.channels_last), self.image_size), targets
        else:
            images = center_crop(images, self.image_size)
        return to_float_nchw(images, self.channels_last), targets

    @property
    def _oversampling(self) -> bool:
        # seed 000 oversamples only when testing; validation stays single-crop (and cheap)
        return self.oversample and self.trainer is not None and self.trainer.testing

    def forward(self, x):
        return self.model(x)

    # ---- loss ---------------------------------------------------------------------------------
    def task_losses(self, outputs: dict[str, torch.Tensor], targets) -> dict[str, torch.Tensor]:
        losses = {}
        for name, task in self.tasks.items():
            loss = task.loss(outputs[name], targets[name])
            for key, weight in self.aux_weights.items():  # auxiliary ("virtual") outputs of the same task
                if key.split(":", 1)[0] == name and key in outputs:
                    loss = loss + float(weight) * task.loss(outputs[key], targets[name])
            losses[name] = loss
        return losses

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.uncertainty:
            return sum(torch.exp(-s) * losses[n] + s for s, n in zip(self.log_vars, losses))
        return sum(self.weights[n] * loss for n, loss in losses.items())

    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.task_losses(self(images), targets)
        loss = self.combine(losses)
        # Epoch means are summed on the device and handed to self.log once, at the epoch's last batch:
        # a self.log call costs ~0.3-1 ms of Python (more than a small model's GPU step), and the logged
        # values are the same batch-size-weighted epoch means as per-step on_epoch logging gives.
        n = len(images)
        step = torch.stack([loss.detach(), *(v.detach() for v in losses.values())]).float() * n
        self._train_sums = step if self._train_sums is None else self._train_sums + step
        self._train_count += n
        trainer = self._trainer
        if trainer is not None and batch_idx + 1 >= trainer.num_training_batches:
            self._log_train_means(list(losses))
        return loss

    def _log_train_means(self, names: list[str]) -> None:
        means = self._train_sums / self._train_count
        self.log("train/loss", means[0], on_step=False, on_epoch=True, batch_size=self._train_count)
        for i, name in enumerate(names, start=1):
            self.log(f"train/{name}_loss", means[i], on_step=False, on_epoch=True, batch_size=self._train_count)
        self._train_logged = True

    def _reset_train_sums(self) -> None:
        self._train_sums, self._train_count, self._train_logged = None, 0, False

    def on_train_epoch_end(self):
        if self._train_sums is not None and not self._train_logged:  # the epoch stopped before its last batch
            self._log_train_means(list(self.tasks))
        # one host sync per epoch instead of one per step: a NaN anywhere makes the sum non-finite
        if self._train_sums is not None and not math.isfinite(float(self._train_sums[0])):
            raise DivergedError(f"non-finite training loss in epoch {self.current_epoch}")
        self._reset_train_sums()

    # ---- evaluation ---------------------------------------------------------------------------
    def _eval_step(self, batch):
        images, targets = batch
        if self._oversampling:  # (N*10, C, h, w): average softmax scores over the 10 crops
            outputs = self(images)
            n = len(images) // 10
            outputs = {k: self._average_crops(k, v, n) for k, v in outputs.items()}
        else:
            outputs = self(images)
        for name in self.tasks:
            self._eval_outputs.setdefault(name, []).append((outputs[name].detach().float(), targets[name]))
        return self.combine(self.task_losses(outputs, targets)).detach()

    def _average_crops(self, key, value, n):
        name = key.split(":", 1)[0]
        task = self.tasks.get(name)
        value = value.view(n, 10, -1)
        if task is not None and getattr(task, "loss_kind", "ce") == "ce" and value.shape[-1] > 1:
            return value.softmax(-1).mean(1).clamp_min(1e-8).log()  # log of averaged probabilities
        return value.mean(1)

    def _epoch_metrics(self, keep_predictions: bool = False) -> dict[str, float]:
        metrics = {}
        for name, parts in self._eval_outputs.items():
            output = torch.cat([p[0] for p in parts]).cpu()
            target = torch.cat([p[1] for p in parts]).cpu()
            for metric, value in self.tasks[name].metrics(output, target).items():
                metrics[f"{name}/{metric}"] = value
            if keep_predictions:  # for confusion matrices and error analysis in reports
                self.test_predictions[f"{name}_true"] = target.numpy()
                self.test_predictions[f"{name}_pred"] = self.tasks[name].predict(output).numpy()
                self.test_predictions[f"{name}_output"] = output.numpy()
                proba = self.tasks[name].class_probabilities(output)
                if proba is not None:  # calibration and risk–coverage (agebench.results.uncertainty)
                    self.test_predictions[f"{name}_proba"] = proba.numpy()
                if hasattr(self.tasks[name], "years"):  # decoded age in years (per-group error, bias plots)
                    self.test_predictions[f"{name}_years"] = self.tasks[name].years(output).numpy()
        self._eval_outputs = {}
        return metrics

    def test_uncertainty(self) -> tuple[dict, dict]:
        """(metrics, calibration) of the last test's predictions: age AuRC, each classifier's ECE and their
        curves (agebench.results.uncertainty); train and eval both record them."""
        from agebench.results.uncertainty import fold_uncertainty

        age = next((t for t in self.tasks.values() if t.name == "age"), None)
        bins = getattr(age, "bins", None) if age is not None else None
        return fold_uncertainty(self.test_predictions, bins.centres if bins is not None else None)

    def validation_step(self, batch, batch_idx):
        loss = self._eval_step(batch)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))

    def on_validation_epoch_end(self):
        metrics = self._epoch_metrics()
        self.last_metrics["val"] = metrics
        for key, value in metrics.items():
            self.log(f"val/{key}", value)

    def test_step(self, batch, batch_idx):
        loss = self._eval_step(batch)
        self.log("test/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))

    def on_test_epoch_end(self):
        metrics = self._epoch_metrics(keep_predictions=True)
        self.last_metrics["test"] = metrics
        for key, value in metrics.items():
            self.log(f"test/{key}", value)

    # ---- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        # optim.name / optim.scheduler pick `_target_` entries of optim.optimizers / optim.schedulers
        from agebench.training.optim import build_optimizer, build_scheduler

        opt = build_optimizer(self.optim_cfg, list(self.parameters()))
        sched = build_scheduler(self.optim_cfg, opt, self.max_epochs)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": sched}
