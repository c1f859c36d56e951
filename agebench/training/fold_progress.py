"""The Lightning callback behind a fold's progress lines (see agebench.runtime.progress for where they go).

One line when the fold starts (position, split sizes, model, params), one per epoch (train loss, the
monitored validation metric, training images/s, elapsed time and an ETA for the fold), and, when
`trainer.progress_bar` asks for it (auto: stdout is a terminal), a live rich bar over the epoch's
training batches. Lightning's own bar stays off (build_trainer): one library, one format.
"""

from __future__ import annotations

import math
import time

import lightning.pytorch as pl

from agebench.runtime import progress


def _batch_len(batch) -> int:
    first = batch
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    shape = getattr(first, "shape", None)
    return int(shape[0]) if shape else 0


class FoldProgress(pl.Callback):
    def __init__(self, cfg, fold, record: dict, params=None):
        self.label = progress.fold_label(fold.key, record.get("variant"), record.get("trial"))
        self.fold_index = fold.index
        self.sizes = fold.sizes()
        self.model = str(cfg.model.name)
        self.tasks = "+".join(record.get("tasks") or [])
        self.params = params
        self.monitor, self.mode = str(cfg.early_stopping.monitor), str(cfg.early_stopping.mode)
        self.live = progress.live_bar_wanted(cfg.trainer.get("progress_bar", "auto"))
        self.best = None
        self._bar = None

    def on_fit_start(self, trainer, pl_module):
        self.fit_start = time.perf_counter()
        self.epochs_run = 0
        if trainer.is_global_zero:
            s = self.sizes
            progress.say(f"{self.label} (fold_{self.fold_index}) · train {s['train']} · val {s['val']} · test {s['test']} "
                         f"· {self.model} ({progress.params_text(self.params)}) · tasks {self.tasks} "
                         f"· up to {trainer.max_epochs} epochs")

    def on_train_epoch_start(self, trainer, pl_module):
        self.epoch_start = self.train_end = time.perf_counter()
        self.images = 0
        if self.live and trainer.is_global_zero:
            total = trainer.num_training_batches
            self._bar = progress.rich_bar(f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
                                           None if math.isinf(total) else int(total), transient=True)
            self._bar[0].start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.images += _batch_len(batch)
        self.train_end = time.perf_counter()
        if self._bar is not None:
            self._bar[0].advance(self._bar[1])

    def on_validation_start(self, trainer, pl_module):
        self._stop_bar()

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop_bar()
        self.epochs_run += 1
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        metrics = trainer.callback_metrics
        value = metrics.get(self.monitor)
        value = float(value) if value is not None else None
        if value is not None and (self.best is None or (value < self.best if self.mode == "min" else value > self.best)):
            self.best = value
        elapsed = now - self.fit_start
        epoch = trainer.current_epoch + 1
        remaining = max(0, int(trainer.max_epochs) - epoch)
        eta = elapsed / self.epochs_run * remaining
        train_seconds = self.train_end - self.epoch_start
        rate = f"{self.images / train_seconds:,.0f} img/s" if train_seconds > 0 and self.images else "? img/s"
        progress.say(f"{self.label} · epoch {epoch}/{trainer.max_epochs} · train/loss {progress.number(metrics.get('train/loss'))} "
                     f"· {self.monitor} {progress.number(value)} (best {progress.number(self.best)}) · {rate} "
                     f"· {progress.duration(elapsed)} elapsed · ETA ≤ {progress.duration(eta)}")

    def on_exception(self, trainer, pl_module, exception):
        self._stop_bar()

    def _stop_bar(self):
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None
