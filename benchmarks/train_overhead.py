"""train_overhead: images/s of an agebench training epoch ÷ images/s of a hand-written PyTorch loop.

agebench side: the real `pl.Trainer` (agebench.training.builders.build_trainer, as `agebench train` builds it),
`MultiTaskModule` and `FaceDataModule` (uint8 batches sliced from the memory-mapped cache, crop/flip/
normalise on the device in `on_after_batch_transfer`), on synthetic faces.
Plain side: the same model (same init), optimizer, loss, batch size, precision, threads and the same
device-side crop/flip/normalise, over images preloaded as one uint8 tensor on the device, indexed by
a random permutation; a per-epoch loss check and LR-schedule step like agebench's.

The two run interleaved in one process — plain epoch k runs right before agebench epoch k (from a
callback, outside agebench's timing) — so machine load hits both alike. Epoch 0 of each is warm-up;
the ratio is the median over the measured epochs of plain_time / agebench_time (= agebench images/s
÷ plain images/s). Validation and checkpointing are off in both (a fold also validates and saves
checkpoints each epoch: benchmarks/fold_overhead.py times whole folds). Target: ratio ≥ 0.95.

    python benchmarks/train_overhead.py [--quick] [--models lmtcnn_1_1,lightweight_joint] [--batch 64]
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch

TARGET = 0.95


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--models", default="lmtcnn_1_1,lightweight_joint,tiny",
                   help="comma-separated (see common.MODEL_ALIASES); 'tiny' is an overhead probe, not in the ratio")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64; 32 with --quick)")
    p.add_argument("--images", type=int, default=None, help="training images per epoch (default 8 batches; 6 with --quick)")
    p.add_argument("--precision", default=None, help="trainer precision (default: the trainer config's)")
    p.add_argument("--channels-last", default=None, choices=["true", "false"], help="default: the trainer config's")
    p.add_argument("--trainer", default=None, help="trainer config group (default: gpu on cuda, else cpu)")
    p.add_argument("--profile", action="store_true",
                   help="also profile one agebench epoch of the first model (Lightning's SimpleProfiler: time per action)")
    args = p.parse_args()
    device, threads, meta = common.start(args, "train_overhead: agebench training epoch vs a plain PyTorch loop", lightning=True)

    batch = int(args.batch or (32 if args.quick else 64))
    n_images = int(args.images or batch * (6 if args.quick else 8))
    reps = int(args.reps or common.MIN_REPS)
    trainer_group = args.trainer or ("gpu" if device.type == "cuda" else "cpu")

    rows, results, skipped = [], [], []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name != TINY and not common.registered(name):
            skipped.append(name)
            print(f"   {name}: not registered in agebench.models yet; skipped")
            continue
        images = n_images if name != TINY else batch * (50 if args.quick else 150)
        threads_before = torch.get_num_threads()
        if name == TINY:  # its ops are tiny: one thread keeps OpenMP waits on a busy machine out of a Python-cost probe
            torch.set_num_threads(1)
        try:
            res = run_model(name, device, batch, images, reps, trainer_group, args)
        finally:
            torch.set_num_threads(threads_before)
        results.append(res)
        rows.append([name, res["input_size"], res["precision"], res["channels_last"], batch, res["steps_per_epoch"],
                     f"{res['agebench_img_s']:.1f}", f"{res['plain_img_s']:.1f}", f"{res['overhead_ms_per_step']:+.1f}",
                     f"{res['checkpoint_s']:.2f}", common.spread(res["ratios"])])
    print()
    print(common.table(["model", "input", "precision", "ch-last", "batch", "steps", "agebench img/s", "plain img/s",
                        "overhead ms/step", "ckpt s", "ratio med [min–max]"], rows))
    real = [r for r in results if r["model"] != TINY]  # the tiny probe measures overhead, not a workload
    ratio = min((r["ratio"] for r in real), default=float("nan"))
    tiny = next((r for r in results if r["model"] == TINY), None)
    if tiny:
        print(f"\n   per-step framework overhead (tiny probe: a 2-layer MLP on 16×16 crops, 1 thread, so the step is "
              f"almost all overhead): agebench {tiny['agebench_step_ms']:.2f} ms/step vs plain "
              f"{tiny['plain_step_ms']:.2f} ms/step → {tiny['overhead_ms_per_step']:+.2f} ms/step")
    profile = None
    if args.profile and results:
        profile = profile_epoch(results[0]["model"], device, batch, n_images, trainer_group, args)
    payload = {"target": TARGET, "ratio": ratio, "batch": batch, "images_per_epoch": n_images, "reps": reps,
               "trainer": trainer_group, "skipped": skipped, "models": results, "profile": profile}
    common.record_result("train_overhead", args, meta, payload)
    worst = min(real, key=lambda r: r["ratio"]) if real else {"model": "-", "ratios": []}
    print(common.ratio_line(f"train_overhead ratio (agebench img/s ÷ plain img/s per interleaved epoch, worst model "
                            f"{worst['model']})", worst["ratios"], TARGET))


def run_model(name: str, device, batch: int, n_images: int, reps: int, trainer_group: str, args) -> dict:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from agebench.data.datamodule import FaceDataModule
    from agebench.data.protocols import Fold
    from agebench.training.builders import build_trainer
    from agebench.training.module import MultiTaskModule

    cfg = _config(name if name != TINY else "lmtcnn_1_1", batch, trainer_group, args)
    size = int(cfg.model.input_size) if name != TINY else 16
    images, records = common.synthetic_images(n_images, common.load_size_for(size))
    tasks, targets = common.task_setup(cfg, records)
    channels_last = bool(cfg.trainer.channels_last)
    precision = str(cfg.trainer.precision)
    epochs = 1 + reps  # epoch 0 is warm-up
    seed = int(cfg.seed)

    # ---- agebench: exactly the objects fit_fold builds --------------------------------------------
    pl.seed_everything(seed, workers=True, verbose=False)
    model = _tiny_model(tasks, size) if name == TINY else common.build_model(cfg, tasks, size)
    plain_model = _tiny_model(tasks, size) if name == TINY else common.build_model(cfg, tasks, size)
    plain_model.load_state_dict(model.state_dict())
    module = MultiTaskModule(model, tasks, cfg.loss, cfg.optim, image_size=size, max_epochs=epochs, seed=seed,
                             channels_last=channels_last)
    if channels_last:
        module.model = module.model.to(memory_format=torch.channels_last)
    fold = Fold(0, train=np.arange(n_images), val=np.arange(0), test=np.arange(0))
    on_gpu = device.type == "cuda"
    datamodule = FaceDataModule(images, targets, fold, batch_size=batch, num_workers=int(cfg.data.num_workers),
                                seed=seed, pin_memory=on_gpu)

    # ---- plain PyTorch: preloaded tensors, hand-written loop --------------------------------------
    plain_loop = common.PlainLoop(plain_model, tasks, module.weights, images, targets, size, batch, device,
                                  channels_last, precision, seed)
    plain = {"times": []}

    class Interleave(Callback):
        """Runs plain epoch k just before agebench epoch k and times agebench epochs start to start."""

        def __init__(self):
            self.agebench_times: list[float] = []
            self._start = None
            self._plain_opt = None

        def _close(self):
            if self._start is not None:
                common.sync(device)
                self.agebench_times.append(time.perf_counter() - self._start)

        def on_train_epoch_start(self, trainer, pl_module):
            self._close()
            if self._plain_opt is None:  # the same optimizer agebench configured, built by hand
                self._plain_opt = common.same_optimizer(trainer.optimizers[0], plain_loop.model)
                self._plain_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self._plain_opt, T_max=epochs)
            plain["times"].append(plain_loop.train_epoch(trainer.current_epoch, self._plain_opt, self._plain_sched))
            common.sync(device)
            self._start = time.perf_counter()

        def on_train_end(self, trainer, pl_module):
            self._close()
            self._start = None

    timer = Interleave()
    with tempfile.TemporaryDirectory(prefix="agebench-bench-") as tmp:
        accelerator = "gpu" if on_gpu else "cpu"
        trainer = build_trainer(cfg, logger=False, callbacks=[timer], default_root_dir=tmp, max_epochs=epochs,
                                min_epochs=epochs, enable_checkpointing=False, limit_val_batches=0,
                                limit_train_batches=None, accelerator=accelerator, devices=1, strategy="auto")
        trainer.fit(module, datamodule=datamodule)
        ckpt = Path(tmp) / "probe.ckpt"
        start = time.perf_counter()
        trainer.save_checkpoint(ckpt)
        checkpoint_s = time.perf_counter() - start
        checkpoint_mb = ckpt.stat().st_size / 1e6

    a_times, p_times = timer.agebench_times[1:], plain["times"][1:]
    ratios = [pt / at for pt, at in zip(p_times, a_times)]
    steps = math.ceil(n_images / batch)
    a_med, p_med = common.median(a_times), common.median(p_times)
    return {
        "model": name, "input_size": size, "load_size": int(images.shape[1]), "precision": precision,
        "channels_last": channels_last, "steps_per_epoch": steps, "images_per_epoch": n_images,
        "agebench_epoch_s": a_times, "plain_epoch_s": p_times,
        "warmup_epoch_s": {"agebench": timer.agebench_times[0], "plain": plain["times"][0]},
        "agebench_img_s": n_images / a_med, "plain_img_s": n_images / p_med,
        "overhead_ms_per_step": 1e3 * (a_med - p_med) / steps,
        "agebench_step_ms": 1e3 * a_med / steps, "plain_step_ms": 1e3 * p_med / steps,
        "ratios": ratios, "ratio": common.median(ratios),
        "checkpoint_s": checkpoint_s, "checkpoint_mb": round(checkpoint_mb, 1),
        "optimizer": type(trainer.optimizers[0]).__name__,
        "fused": bool(trainer.optimizers[0].defaults.get("fused")),
        "deterministic": bool(cfg.trainer.deterministic),
        "num_workers": int(cfg.data.num_workers),
    }


def _config(name: str, batch: int, trainer_group: str, args):
    overrides = [*common.model_overrides(name), f"trainer={trainer_group}", "logger=none", "tasks=age_gender",
                 f"data.batch_size={batch}"]
    if args.precision:
        overrides.append(f"trainer.precision={args.precision}")
    if args.channels_last:
        overrides.append(f"trainer.channels_last={args.channels_last}")
    return common.compose(overrides)


def profile_epoch(name: str, device, batch: int, n_images: int, trainer_group: str, args) -> dict:
    """Where an agebench epoch's time goes: Lightning's SimpleProfiler over a 2-epoch fit, epoch 1 only
    would need a custom profiler, so both epochs are shown; shares are of `run_training_epoch`."""
    import lightning.pytorch as pl
    from lightning.pytorch.profilers import SimpleProfiler

    from agebench.data.datamodule import FaceDataModule
    from agebench.data.protocols import Fold
    from agebench.training.builders import build_trainer
    from agebench.training.module import MultiTaskModule

    cfg = _config(name, batch, trainer_group, args)
    size = int(cfg.model.input_size)
    images, records = common.synthetic_images(n_images, common.load_size_for(size))
    tasks, targets = common.task_setup(cfg, records)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    module = MultiTaskModule(common.build_model(cfg, tasks, size), tasks, cfg.loss, cfg.optim, image_size=size,
                             max_epochs=2, seed=int(cfg.seed), channels_last=bool(cfg.trainer.channels_last))
    if cfg.trainer.channels_last:
        module.model = module.model.to(memory_format=torch.channels_last)
    fold = Fold(0, train=np.arange(n_images), val=np.arange(0), test=np.arange(0))
    datamodule = FaceDataModule(images, targets, fold, batch_size=batch, num_workers=int(cfg.data.num_workers),
                                seed=int(cfg.seed), pin_memory=device.type == "cuda")
    profiler = SimpleProfiler()
    with tempfile.TemporaryDirectory(prefix="agebench-bench-") as tmp:
        trainer = build_trainer(cfg, logger=False, callbacks=[], default_root_dir=tmp, max_epochs=2, min_epochs=2,
                                enable_checkpointing=False, limit_val_batches=0, profiler=profiler,
                                accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, strategy="auto")
        trainer.fit(module, datamodule=datamodule)
    durations = {k: sum(v) for k, v in profiler.recorded_durations.items()}
    calls = {k: len(v) for k, v in profiler.recorded_durations.items()}
    epoch_total = durations.get("run_training_epoch") or max(durations.values())
    rows = sorted(((k, v) for k, v in durations.items() if k != "run_training_epoch"), key=lambda kv: -kv[1])[:16]
    table = [{"action": k, "calls": calls[k], "total_s": round(v, 4), "share_of_epochs": round(v / epoch_total, 4)}
             for k, v in rows]
    model_s = sum(durations.get(k, 0.0) for k in durations
                  if k.endswith((".training_step", ".backward")) and k.startswith("[Strategy]"))
    step_s = durations.get("run_training_batch", 0.0)
    print(f"\n   profile of 2 agebench epochs of {name} (Lightning SimpleProfiler; shares of run_training_epoch "
          f"= {epoch_total:.2f} s; nested actions overlap):")
    print("   " + common.table(["action", "calls", "total s", "share"],
                              [[r["action"][:60], r["calls"], f"{r['total_s']:.3f}", f"{100 * r['share_of_epochs']:.1f}%"]
                               for r in table]).replace("\n", "\n   "))
    outside = epoch_total - step_s
    print(f"   forward+loss+backward {100 * model_s / epoch_total:.1f}% · optimizer step and hooks "
          f"{100 * (step_s - model_s) / epoch_total:.1f}% · outside the batch (data fetch, transfer, augmentation, "
          f"epoch hooks) {100 * outside / epoch_total:.1f}%")
    return {"model": name, "epochs": 2, "epoch_total_s": epoch_total, "actions": table,
            "forward_backward_share": model_s / epoch_total, "outside_batch_share": outside / epoch_total}


TINY = "tiny"


def _tiny_model(tasks, size: int) -> torch.nn.Module:
    """A 2-layer MLP with one head per task: its step is almost all framework overhead (the probe)."""
    from agebench.models.heads import MultiTaskNet

    return MultiTaskNet(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, 64)), tasks, size,
                        shared_fc=[64])


if __name__ == "__main__":
    main()
