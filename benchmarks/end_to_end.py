"""end_to_end: a full k-fold `agebench train` run, timed — issue 7's GPU target in one command.

Target (issue 7): 5-fold LMTCNN-1-1 on an Adience-sized synthetic set (~16k images, 227 crops from
256, 50 epochs, early stopping off) in ≤ 10 minutes on one H100. The dataset is rendered and cached
first and timed on its own (rendering is a one-off per machine); then `agebench.training.experiment.run_experiment`
— exactly what `agebench train` runs — trains every fold into a fresh output directory, and the run
records give each fold's time. The last line is target minutes ÷ measured minutes (≥ 1 meets it).

    python benchmarks/end_to_end.py --device cuda          # the real target (trainer=gpu)
    python benchmarks/end_to_end.py --quick                # a CPU smoke run of the same path (~1-2 min)
"""

from __future__ import annotations

import tempfile
import time

import common

TARGET_MINUTES = 10.0


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--subjects", type=int, default=None, help="synthetic subjects × 4 images (default 4000 → 16k)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per fold (default 50)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="data.num_workers (default 4 on cuda, 0 on cpu)")
    p.add_argument("--trainer", default=None, help="trainer config group (default: gpu on cuda, else cpu)")
    p.add_argument("--override", action="append", default=[], help="extra agebench override (repeatable)")
    p.add_argument("--target-minutes", type=float, default=TARGET_MINUTES)
    args = p.parse_args()
    device, threads, meta = common.start(args, "end_to_end: a full k-fold agebench train run", lightning=True)

    subjects = int(args.subjects or (100 if args.quick else 4000))
    epochs = int(args.epochs or (2 if args.quick else 50))
    on_gpu = device.type == "cuda"
    workers = int(args.workers if args.workers is not None else (4 if on_gpu else 0))
    overrides = ["model=lmtcnn", "model.width=[1,1]", "tasks=age_gender", f"trainer={args.trainer or ('gpu' if on_gpu else 'cpu')}",
                 "logger=none", f"data.n_subjects={subjects}", "data.images_per_subject=4", "data.image_size=227",
                 "data.load_size=256", f"data.batch_size={args.batch}", f"data.num_workers={workers}",
                 f"protocol.n_folds={args.folds}", f"trainer.max_epochs={epochs}", f"trainer.min_epochs={epochs}",
                 f"early_stopping.patience={epochs + 1}", f"trainer.threads={threads}", *args.override]
    cfg = common.compose(overrides)

    from agebench.data.loading import load_dataset
    from agebench.paths import cache_dir
    from agebench.results.store import read_records
    from agebench.training.experiment import run_experiment

    start = time.perf_counter()
    dataset = load_dataset(cfg.data, cache_dir())  # rendered + cached once; the run below reuses it in-process
    prepare_s = time.perf_counter() - start
    print(f"   dataset: {len(dataset.records)} images at {dataset.images.shape[1]} px, ready in {prepare_s:.1f} s "
          f"(render + cache, or a cache hit)")

    with tempfile.TemporaryDirectory(prefix="agebench-e2e-") as out:
        start = time.perf_counter()
        run_experiment(cfg, out, print_table=False)
        train_s = time.perf_counter() - start
        records = read_records(f"{out}/results.jsonl")
    folds = [{"fold": r["fold"], "seconds": r["train_seconds"], "epochs": r["epochs"], "status": r["status"],
              "age_top1": r["metrics"].get("age/top1"), "gender_acc": r["metrics"].get("gender/acc")} for r in records]
    print()
    print(common.table(["fold", "status", "epochs", "seconds", "age top-1", "gender acc"],
                       [[f["fold"], f["status"], f["epochs"], f"{f['seconds']:.1f}", f"{f['age_top1']:.3f}",
                         f"{f['gender_acc']:.3f}"] for f in folds]))
    minutes = train_s / 60
    images = sum(r["fold_sizes"]["train"] for r in records) * epochs
    print(f"\n   {len(records)} folds × {epochs} epochs in {minutes:.2f} min ({images / train_s:.0f} training images/s "
          f"overall, validation and testing included)")
    at_target_size = subjects == 4000 and epochs == 50 and args.folds == 5
    payload = {"target_minutes": args.target_minutes, "minutes": minutes, "ratio": args.target_minutes / minutes,
               "prepare_s": prepare_s, "subjects": subjects, "images": len(dataset.records), "epochs": epochs,
               "n_folds": args.folds, "at_target_size": at_target_size, "batch": args.batch,
               "num_workers": workers, "overrides": overrides,
               "trainer": records[0]["trainer"] if records else None, "folds": folds}
    common.record_result("end_to_end", args, meta, payload)
    verdict = common.verdict(args.target_minutes / minutes, 1.0) if at_target_size else "n/a (not the target's sizes)"
    print(f"end_to_end ratio (target {args.target_minutes:g} min ÷ measured {minutes:.2f} min): "
          f"{args.target_minutes / minutes:.3f} target ≥ 1 {verdict}")


if __name__ == "__main__":
    main()
