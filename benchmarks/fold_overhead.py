"""fold_overhead: one whole agebench fold (train + validate every epoch + test) ÷ a hand-written loop.

train_overhead times training epochs only. A fold also validates every epoch, writes `last.ckpt`
(weights + optimizer state, for resume) and `best.ckpt`, runs early stopping and the learning-curve
callback, profiles the model for the run record (params, GMACs, batch-1 latency) and tests the best
checkpoint, saving predictions. This benchmark times all of that.

agebench side: `agebench.training.fit.fit_fold` itself (the function `agebench train` calls per fold) on
synthetic faces, with a timing callback added to its trainer.
Plain side: the same model (same init), optimizer, LR schedule, batch, precision and threads over
images preloaded on the device (benchmarks/common.py's PlainLoop): train, validate (loss + the tasks'
metrics), keep the best weights in memory, test them at the end. It writes no files, so checkpoint
writes count as agebench overhead: the price of resumable runs.

The two run interleaved (plain fold, agebench fold, plain, agebench, …); the first pair is warm-up.
Printed: the phase breakdown (setup, train, validate, between epochs, test), the fixed costs per fold
and per epoch, and the ratio plain ÷ agebench of whole folds, as measured on these toy folds (epochs
of a few steps, so fixed per-epoch costs weigh far more than in a real run) and — the last line, the
target ≥ 0.95 — projected to a real fold (50 epochs of an Adience-sized training set by default) from
the per-image, per-epoch and per-fold parts measured in this run.

    python benchmarks/fold_overhead.py [--quick] [--model lmtcnn_1_1] [--epochs 4] [--batch 64]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import common
import numpy as np
import torch

TARGET = 0.95


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--model", default="lmtcnn_1_1", help="see common.MODEL_ALIASES")
    p.add_argument("--epochs", type=int, default=None, help="epochs per fold (default 4; 3 with --quick)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64; 32 with --quick)")
    p.add_argument("--train-batches", type=int, default=None, help="training batches per epoch (default 8; 4 with --quick)")
    p.add_argument("--project-epochs", type=int, default=50, help="epochs of the projected fold (seed 000: 50)")
    p.add_argument("--project-train-images", type=int, default=12800,
                   help="training images of the projected fold (an Adience fold: ~12.8k; validation = 1/8 of it)")
    p.add_argument("--trainer", default=None, help="trainer config group (default: gpu on cuda, else cpu)")
    p.add_argument("--override", action="append", default=[],
                   help="extra override of agebench's config (repeatable), e.g. trainer.async_checkpoint=true")
    args = p.parse_args()
    device, threads, meta = common.start(args, "fold_overhead: a whole agebench fold vs a hand-written train/validate/test loop", lightning=True)

    batch = int(args.batch or (32 if args.quick else 64))
    epochs = int(args.epochs or (3 if args.quick else 4))
    n_train = batch * int(args.train_batches or (4 if args.quick else 8))
    n_eval = 2 * batch  # validation and test sets: two batches each (a fold's val/test are ~1/5 of train)
    reps = int(args.reps or common.MIN_REPS)
    trainer_group = args.trainer or ("gpu" if device.type == "cuda" else "cpu")

    size = int(common.compose(common.model_overrides(args.model)).model.input_size)
    cfg = common.compose([*common.model_overrides(args.model), f"trainer={trainer_group}", "logger=none",
                          "tasks=age_gender", f"data.batch_size={batch}", f"data.image_size={size}",
                          f"data.load_size={common.load_size_for(size)}", f"trainer.max_epochs={epochs}",
                          f"trainer.min_epochs={epochs}", f"early_stopping.patience={epochs + 1}",
                          "trainer.accelerator=" + ("gpu" if device.type == "cuda" else "cpu"), *args.override])
    images, records = common.synthetic_images(n_train + 2 * n_eval, common.load_size_for(size))
    tasks, targets = common.task_setup(cfg, records)
    rows = np.arange(len(images))
    fold = _fold(n_train, n_eval)

    agebench, plain = [], []
    with tempfile.TemporaryDirectory(prefix="agebench-bench-") as tmp:
        for rep in range(1 + reps):  # rep 0 = warm-up pair
            plain.append(plain_fold(cfg, tasks, images, targets, fold, size, batch, epochs, device))
            agebench.append(agebench_fold(cfg, tasks, images, records, targets, rows, fold, Path(tmp) / f"rep{rep}" / f"fold_{fold.index}"))
            print(f"   rep {rep}{' (warm-up)' if rep == 0 else ''}: plain {plain[-1]['total']:.2f} s · "
                  f"agebench {agebench[-1]['total']:.2f} s")
    agebench, plain = agebench[1:], plain[1:]

    phases = ["setup", "train", "validate", "between", "test"]
    a = {k: common.median([r[k] for r in agebench]) for k in [*phases, "total"]}
    b = {k: common.median([r[k] for r in plain]) for k in [*phases, "total"]}
    a_between = {k: common.median([r["between_parts"][k] for r in agebench]) for k in agebench[0]["between_parts"]}
    print()
    print(common.table(["phase (median s per fold)", "agebench", "plain", "agebench − plain"],
                       [[k, f"{a[k]:.3f}", f"{b[k]:.3f}", f"{a[k] - b[k]:+.3f}"] for k in [*phases, "total"]]))
    ratios = [pr["total"] / ar["total"] for pr, ar in zip(plain, agebench)]
    ratio = common.median(ratios)

    # fixed costs: per fold (setup + test) and per epoch (validate + between), beyond the plain loop's
    per_fold = (a["setup"] + a["test"]) - (b["setup"] + b["test"])
    per_epoch = ((a["validate"] + a["between"]) - (b["validate"] + b["between"])) / epochs
    per_epoch_train = (a["train"] - b["train"]) / epochs
    print("\n   between epochs (agebench, median s per epoch): "
          + " · ".join(f"{k} {v / epochs:.3f}" for k, v in a_between.items()))
    print(f"   fixed cost per fold (setup incl. profiling, test incl. checkpoint load and predictions): {per_fold:+.2f} s")
    print(f"   fixed cost per epoch (validation loop, checkpoints, early stopping, history): {1e3 * per_epoch:+.0f} ms; "
          f"training loop: {1e3 * per_epoch_train:+.0f} ms per epoch of {n_train // batch} steps")

    # a real fold from the parts measured here: per-image train/eval rates, per-epoch and per-fold costs
    n, n_img, n_val = int(args.project_epochs), int(args.project_train_images), int(args.project_train_images) // 8

    def projected_seconds(m: dict) -> float:
        train_rate, eval_rate = m["train"] / (epochs * n_train), m["validate"] / (epochs * n_eval)
        return m["setup"] + m["test"] + n * (n_img * train_rate + n_val * eval_rate + m["between"] / epochs)

    projected = projected_seconds(b) / projected_seconds(a)
    projected_per_rep = [projected_seconds(pr) / projected_seconds(ar) for pr, ar in zip(plain, agebench)]
    print(f"   projected to a fold of {n} epochs × {n_img} training + {n_val} validation images: agebench "
          f"{projected_seconds(a) / 60:.1f} min, plain {projected_seconds(b) / 60:.1f} min, ratio {projected:.3f}")

    payload = {"target": TARGET, "ratio": ratio, "ratios": ratios, "projected_ratio": projected,
               "projected_ratios": projected_per_rep, "projected_ratio_median": common.median(projected_per_rep),
               "model": args.model, "input_size": size, "batch": batch, "epochs": epochs,
               "train_images": n_train, "eval_images": n_eval, "reps": reps, "trainer": trainer_group,
               "precision": str(cfg.trainer.precision), "channels_last": bool(cfg.trainer.channels_last),
               "async_checkpoint": bool(cfg.trainer.get("async_checkpoint")), "overrides": args.override,
               "agebench": a, "plain": b, "between_parts": a_between, "fixed_per_fold_s": per_fold,
               "fixed_per_epoch_s": per_epoch, "train_loop_extra_per_epoch_s": per_epoch_train,
               "projected_fold": {"epochs": n, "train_images": n_img, "val_images": n_val,
                                  "agebench_s": projected_seconds(a), "plain_s": projected_seconds(b)},
               "folds": {"agebench": agebench, "plain": plain}}
    common.record_result("fold_overhead", args, meta, payload)
    print(f"   measured on the {epochs}-epoch toy folds: " + common.ratio_line("plain ÷ agebench", ratios))
    print(common.ratio_line(f"fold_overhead ratio (plain ÷ agebench fold time, each pair projected to {n} epochs × "
                            f"{n_img} images from its parts)", projected_per_rep, TARGET))

def _fold(n_train: int, n_eval: int):
    from agebench.data.protocols import Fold

    return Fold(0, train=np.arange(n_train), val=np.arange(n_train, n_train + n_eval),
                test=np.arange(n_train + n_eval, n_train + 2 * n_eval))


# ------------------------------------------------------------------------------------------------
# agebench: the real fit_fold, with a timing callback slipped into its trainer
# ------------------------------------------------------------------------------------------------
def agebench_fold(cfg, tasks, images, records, targets, rows, fold, fold_dir: Path) -> dict:
    from omegaconf import OmegaConf

    from agebench.data.render import RACE_NAMES
    from agebench.training.builders import resolve_sizes
    from agebench.training.fit import fit_fold
    from agebench.training.fold_context import FoldContext
    from agebench.training.fold_plan import FoldPlan

    timer = _PhaseTimer()
    # fit_fold reads the image array, the records (age label budget, per-group breakdown) and race names
    dataset = SimpleNamespace(images=images, records=records, race_names=tuple(RACE_NAMES))
    cfg_dict = OmegaConf.to_container(cfg, resolve=True)
    plan = FoldPlan(tasks, rows, records, targets, [fold])
    ctx = FoldContext(cfg, cfg_dict, "benchmark", dataset, plan, resolve_sizes(cfg), fold_dir.parent).for_fold(fold)
    start = time.perf_counter()
    # extra_callbacks: fit_fold's hook for a callback of the caller's, here the phase timer
    result = fit_fold(ctx, record={}, extra_callbacks=[timer.callback])
    end = time.perf_counter()
    if result["epochs"] < 1 or len(timer.train_start) != int(cfg.trainer.max_epochs):
        raise RuntimeError(f"agebench fold ran {len(timer.train_start)} epochs, expected {cfg.trainer.max_epochs}")
    return timer.phases(start, end)


class _PhaseTimer:
    """Wall-clock marks at Lightning's hooks. Callbacks run before ModelCheckpoint/EarlyStopping (Lightning
    moves checkpoint callbacks last), so `between` = validation end → next epoch start holds their work."""

    def __init__(self):
        from lightning.pytorch.callbacks import Callback

        self.train_start, self.val_start, self.val_end, self.train_end = [], [], [], []
        self.fit_end = self.test_start = None
        timer = self

        class _Marks(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                timer.train_start.append(time.perf_counter())

            def on_validation_epoch_start(self, trainer, pl_module):
                if not trainer.sanity_checking:
                    timer.val_start.append(time.perf_counter())

            def on_validation_end(self, trainer, pl_module):
                if not trainer.sanity_checking:
                    timer.val_end.append(time.perf_counter())

            def on_train_epoch_end(self, trainer, pl_module):
                timer.train_end.append(time.perf_counter())

            def on_fit_end(self, trainer, pl_module):
                timer.fit_end = time.perf_counter()

            def on_test_start(self, trainer, pl_module):
                timer.test_start = time.perf_counter()

        self.callback = _Marks()

    def phases(self, start: float, end: float) -> dict:
        n = len(self.train_start)
        next_start = [*self.train_start[1:], self.fit_end]
        train = sum(v - t for t, v in zip(self.train_start, self.val_start))
        validate = sum(e - v for v, e in zip(self.val_start, self.val_end))
        between = sum(s - e for e, s in zip(self.val_end, next_start))
        # ModelCheckpoint saves in on_train_epoch_end when validation runs every epoch (after this callback's
        # hook), so the epoch-end part holds the checkpoint writes
        val_hooks = sum(t - e for e, t in zip(self.val_end, self.train_end))
        return {"setup": self.train_start[0] - start, "train": train, "validate": validate, "between": between,
                "test": end - self.fit_end, "total": end - start, "epochs": n,
                "between_parts": {"validation-end hooks": val_hooks, "epoch-end hooks (checkpoints, early stopping, "
                                  "history, LR step)": between - val_hooks},
                "test_loop": end - (self.test_start or self.fit_end)}


# ------------------------------------------------------------------------------------------------
# plain PyTorch: the same work by hand
# ------------------------------------------------------------------------------------------------
def plain_fold(cfg, tasks, images, targets, fold, size: int, batch: int, epochs: int, device) -> dict:
    import lightning.pytorch as pl

    from agebench.training.module import MultiTaskModule

    start = time.perf_counter()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    model = common.build_model(cfg, tasks, size)
    # the optimizer and schedule agebench would configure (same class, hyper-parameters and fused step)
    reference = MultiTaskModule(common.build_model(cfg, tasks, size), tasks, cfg.loss, cfg.optim, image_size=size,
                                max_epochs=epochs, seed=int(cfg.seed))
    loop = common.PlainLoop(model, tasks, reference.weights, images, targets, size, batch, device,
                            bool(cfg.trainer.channels_last), str(cfg.trainer.precision), int(cfg.seed))
    optimizer = common.same_optimizer(reference.configure_optimizers()["optimizer"], loop.model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    common.sync(device)
    marks = {"setup": time.perf_counter() - start, "train": 0.0, "validate": 0.0, "between": 0.0}
    best, best_state = float("inf"), None
    for epoch in range(epochs):
        marks["train"] += loop.train_epoch(epoch, optimizer, scheduler, fold.train)
        t0 = time.perf_counter()
        val_loss, _ = loop.evaluate(fold.val)
        t1 = time.perf_counter()
        if val_loss < best:  # the hand-written "best checkpoint": a copy of the weights in memory
            best, best_state = val_loss, {k: v.detach().clone() for k, v in loop.model.state_dict().items()}
        marks["validate"] += t1 - t0
        marks["between"] += time.perf_counter() - t1
    t0 = time.perf_counter()
    loop.model.load_state_dict(best_state)
    loop.evaluate(fold.test)
    end = time.perf_counter()
    return {**marks, "test": end - t0, "total": end - start, "epochs": epochs}


if __name__ == "__main__":
    main()
