"""The Lightning callbacks of a fold: the configurable ones (the `callbacks` config group, each entry a
Hydra `_target_`, e.g. early stopping) and the run's own machinery, which a fold's resume and its run
record depend on and which config does not remove: best/last checkpoints, the per-epoch history, stop
signals, progress lines, the per-epoch core split, and the test-only fault injection.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from agebench.errors import UserError

# TEST-ONLY fault injection: "fold=1,epoch=1" hard-kills the process (as SIGKILL would) when that
# fold starts that epoch, after the previous epoch's checkpoint is on disk; "fold=1,epoch=1,signal=TERM"
# sends itself SIGTERM there instead.
FAULT_ENV = "AGEBENCH_TEST_KILL_AT"


@dataclass
class FoldCallbacks:
    all: list          # what the Trainer gets, in order
    best: object       # ModelCheckpoint of best.ckpt (its best_model_path is what testing loads)
    history: object    # HistoryCallback (the record's per-epoch history)


def configured_callbacks(cfg) -> list:
    """The `callbacks` group's entries, instantiated (hydra.utils.instantiate), in config order."""
    from hydra.utils import instantiate

    entries = cfg.get("callbacks")
    out = []
    for name, spec in (entries or {}).items():
        if spec is None:  # `callbacks.<name>=null` switches one off
            continue
        if not OmegaConf.is_dict(spec) or "_target_" not in spec:
            raise UserError(f"callbacks.{name} needs a _target_ (a Lightning Callback class path), e.g. "
                            f"+callbacks.lr_monitor='{{_target_: lightning.pytorch.callbacks.LearningRateMonitor}}'")
        try:
            out.append(instantiate(spec))
        except Exception as err:  # hydra wraps import and argument errors in InstantiationException
            raise UserError(f"callbacks.{name}: cannot build {spec._target_} ({str(err).splitlines()[0]})") from None
    return out


def fold_callbacks(cfg, fold_index: int, fold_dir: Path, progress_line, extra=(), repeat: int = 0) -> FoldCallbacks:
    """Every callback of one fold. `progress_line` is the fold's FoldProgress; `extra` callbacks (a
    benchmark's timer: benchmarks/fold_overhead.py) come last."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from agebench.runtime.threads import epoch_callback
    from agebench.training import signals

    monitor, mode = str(cfg.early_stopping.monitor), str(cfg.early_stopping.mode)
    # Two checkpoints. best.ckpt: weights only (what testing needs; a third of LMTCNN's 90 MB with AdamW
    # state), written when the monitor improves. last.ckpt: full training state, written EVERY epoch so a
    # killed fold resumes from its latest epoch. (Lightning ≥ 2.6 writes `save_last=True` only alongside
    # a top-k save, i.e. at the best epoch: a resume would redo every epoch since.)
    best = ModelCheckpoint(dirpath=fold_dir / "checkpoints", filename="best", monitor=monitor, mode=mode,
                           save_top_k=1, save_weights_only=True, auto_insert_metric_name=False,
                           enable_version_counter=False)
    # last.ckpt at train-epoch end, after HistoryCallback has added the epoch's row (monitoring callbacks
    # run last there): the checkpoint carries the history up to and including its epoch
    latest = ModelCheckpoint(dirpath=fold_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                             auto_insert_metric_name=False, enable_version_counter=False, save_on_train_epoch_end=True)
    history = HistoryCallback()
    callbacks = [best, latest, *configured_callbacks(cfg), history]
    if os.environ.get(FAULT_ENV):
        callbacks.append(KillAt(os.environ[FAULT_ENV], fold_index, repeat))
    callbacks.append(signals.stop_at_safe_point_callback())  # a stop signal ends the fold between batches
    callbacks.append(progress_line)  # fold and epoch lines, live bar
    # jobs started or ended since: re-split the cores each epoch
    callbacks.append(epoch_callback(cfg.trainer, int(cfg.data.get("num_workers") or 0)))
    callbacks.extend(extra)
    return FoldCallbacks(callbacks, best, history)


class HistoryCallback:
    """Per-epoch train/val metrics for learning curves (kept in the run record)."""

    def __new__(cls):
        from lightning.pytorch.callbacks import Callback

        class _History(Callback):
            def __init__(self):
                self.history: list[dict] = []

            def on_train_epoch_end(self, trainer, pl_module):
                row = {"epoch": int(trainer.current_epoch)}
                for key, value in trainer.callback_metrics.items():
                    if key.startswith(("train/", "val/")):
                        row[key] = float(value)
                self.history.append(row)

            # kept in last.ckpt, so a resumed fold's record has the whole history (and best epoch)
            def state_dict(self):
                return {"history": [dict(row) for row in self.history]}

            def load_state_dict(self, state_dict):
                self.history = [dict(row) for row in state_dict.get("history", [])]

        return _History()


class KillAt:
    """The FAULT_ENV callback (tests only): die, or signal this process, at a fold's epoch start."""

    def __new__(cls, spec: str, fold_index: int, repeat: int = 0):
        from lightning.pytorch.callbacks import Callback

        want = dict(part.split("=") for part in spec.split(","))
        # "signal=TERM" (or INT, USR1) sends that signal to this process instead of dying at once
        signum = getattr(signal, f"SIG{want['signal']}") if "signal" in want else None

        class _Kill(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if (int(want["fold"]) == fold_index and int(want.get("repeat", 0)) == repeat
                        and int(want["epoch"]) == trainer.current_epoch):
                    if signum is None:
                        os._exit(137)
                    os.kill(os.getpid(), signum)

        return _Kill()
