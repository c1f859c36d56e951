"""Plumbing shared by the benchmark scripts: arguments, synthetic data, timing, provenance, results.

Every script measures the things it compares *in one run, interleaved* (A, B, A, B, ...), takes
medians over repetitions after a warm-up, prints a table and then its ratio on the last line, and
appends one JSON line to `benchmarks/results/<name>.jsonl` with the machine, threads, device, torch
version, git sha and the load average (a shared machine is noisy: ratios travel, absolute times do not).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a fresh clone without `pip install -e .`
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------------------------------------
# arguments, threads, device
# ------------------------------------------------------------------------------------------------
def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    p.add_argument("--quick", action="store_true", help="small sizes (about 1-2 minutes on 2 CPU cores)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: every core this process may use)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = cuda when available")
    p.add_argument("--reps", type=int, default=None,
                   help=f"measured repetitions after the warm-up (default {MIN_REPS}: a verdict needs at least {MIN_REPS})")
    p.add_argument("--no-record", action="store_true", help="do not append the JSON line to benchmarks/results/")
    return p


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS)
        return os.cpu_count() or 1


def setup(args) -> tuple[torch.device, int]:
    """Apply --threads and resolve --device; returns (device, threads)."""
    threads = int(args.threads or available_cores())
    torch.set_num_threads(threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            sys.exit("--device cuda: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device, threads


def start(args, title: str, lightning: bool = False) -> tuple[torch.device, int, dict]:
    """Threads and device from the arguments, the provenance every result line carries, and the header
    line; `lightning` quiets Lightning's banners for scripts that train through it."""
    device, threads = setup(args)
    if lightning:
        quiet_lightning()
    meta = provenance(device, threads)
    header(title, meta)
    return device, threads, meta


def quiet_lightning() -> None:
    """Lightning's banners and tips off, as `agebench train` has them (plus the weights_only notice that
    the benchmarks' own checkpoint reloads would print)."""
    import warnings

    from agebench.runtime.process import quiet_lightning as quiet

    quiet()
    warnings.filterwarnings("ignore", message=".*weights_only.*")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------
# provenance and results
# ------------------------------------------------------------------------------------------------
def provenance(device: torch.device, threads: int) -> dict:
    from agebench.models.profile import describe_device
    from agebench.results.provenance import git_sha, hardware, versions

    hw = hardware()
    return {
        "machine": {k: hw.get(k) for k in ("host", "cpu", "cpu_count", "gpu", "platform")},
        "device": describe_device(device),
        "threads": int(threads),
        "torch": torch.__version__,
        "versions": versions(),
        "git_sha": git_sha(),
        "load_avg_start": round(os.getloadavg()[0], 2),
    }


def record_result(name: str, args, meta: dict, payload: dict) -> Path | None:
    """Append one JSON line to benchmarks/results/<name>.jsonl (unless --no-record)."""
    if getattr(args, "no_record", False):
        return None
    row = {"benchmark": name, "at": datetime.now(UTC).isoformat(timespec="seconds"),
           "quick": bool(args.quick), "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           **meta, "load_avg_end": round(os.getloadavg()[0], 2), **payload}
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.jsonl"
    with open(path, "a") as fh:
        fh.write(json.dumps(row, default=_json_default) + "\n")
    print(f"\n   appended to {path.relative_to(ROOT)}")
    return path


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def header(title: str, meta: dict) -> None:
    print(f"== {title}")
    print(f"   device: {meta['device']} · threads: {meta['threads']} · torch {meta['torch']} · "
          f"git {meta['git_sha'][:12]} · load avg {meta['load_avg_start']}")


# One run of a benchmark cannot carry a claim (issue 27: the same roofline ratio printed 44–65 % on one idle
# machine): every ratio with a target is the median of at least this many interleaved repetitions, printed
# with its range, and its verdict is read off the median.
MIN_REPS = 5


def ratio_line(what: str, values, target: float | None = None, higher_is_better: bool = True, fmt: str = ".3f",
               unit: str = "") -> str:
    """'<what>: <median> [<min>–<max>], median of n interleaved repetitions[, target ≥ t PASS|MISS]' — the
    verdict from the median, and none at all below MIN_REPS repetitions."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return f"{what}: n/a (no finished repetition)"
    text = (f"{what}: {median(vals):{fmt}}{unit} [{min(vals):{fmt}}–{max(vals):{fmt}}{unit}], median of {len(vals)} "
            f"interleaved repetitions")
    if target is not None:
        sign = "≥" if higher_is_better else "≤"
        call = (verdict(median(vals), target, higher_is_better) if len(vals) >= MIN_REPS
                else f"no verdict (fewer than {MIN_REPS} repetitions)")
        text += f", target {sign} {target:{fmt}}{unit} {call}"
    return text


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    if not math.isfinite(value):
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


# ------------------------------------------------------------------------------------------------
# statistics and timing
# ------------------------------------------------------------------------------------------------
def median(values) -> float:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(statistics.median(values)) if values else float("nan")


def spread(values) -> str:
    """'median [min–max]' for a table cell."""
    values = [float(v) for v in values]
    if not values:
        return "-"
    return f"{median(values):.3g} [{min(values):.3g}–{max(values):.3g}]"


def timed(fn, device: torch.device) -> float:
    """Seconds one call of `fn` takes, device work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_gflops(device: torch.device, n: int | None = None, min_seconds: float = 0.3,
                  dtype: torch.dtype = torch.float32) -> float:
    """Measured rate of a square n×n fp32 matmul on `device` (GFLOP/s, 2·n³ FLOPs per product),
    with the current thread count: the machine's practical dense-arithmetic peak."""
    n = int(n or (8192 if device.type == "cuda" else 2048))
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up (BLAS threads, cuBLAS handles)
    sync(device)
    iters, elapsed = 0, 0.0
    start = time.perf_counter()
    while elapsed < min_seconds or iters < 2:
        torch.mm(a, b)
        iters += 1
        if device.type == "cuda" and iters % 4:
            continue
        sync(device)
        elapsed = time.perf_counter() - start
    sync(device)
    elapsed = time.perf_counter() - start
    return 2.0 * n ** 3 * iters / elapsed / 1e9


# ------------------------------------------------------------------------------------------------
# configs, models, data
# ------------------------------------------------------------------------------------------------
MODEL_ALIASES = {  # benchmark name -> hydra overrides of conf/train.yaml
    "lmtcnn_1_1": ["model=lmtcnn", "model.width=[1,1]"],
    "lmtcnn_2_1": ["model=lmtcnn", "model.width=[2,1]"],
    "lightweight_joint": ["model=lightweight_joint"],
    "levi_hassner": ["model=levi_hassner"],
    "multibranch": ["model=multibranch"],
}


def model_overrides(name: str) -> list[str]:
    return list(MODEL_ALIASES.get(name, [f"model={name}"]))


def compose(overrides: list[str]):
    """conf/train.yaml composed with `overrides`, the way `agebench train` would build it."""
    from agebench.config.compose import compose_config

    return compose_config(list(overrides))


def registered(name: str) -> bool:
    from agebench.models import list_models

    model = model_overrides(name)[0].split("=", 1)[1]
    return model in list_models()


def build_model(cfg, tasks, image_size: int) -> torch.nn.Module:
    from agebench.training.builders import build_model as build

    return build(cfg, tasks, image_size=image_size)


def load_size_for(image_size: int) -> int:
    """Cached image size for a network input, by agebench's own rule (256/227 of it: seed 000's crops)."""
    from agebench.data.loading import load_size

    return load_size({"image_size": int(image_size), "load_size": None})


def synthetic_images(n_images: int, size: int, seed: int = 0):
    """(uint8 (N, size, size, 3) read-only memmap from agebench's decode-once cache, record table).

    Faces are rendered by agebench.data.render at ≤128 px and resized bilinearly to `size`, so a
    few hundred 256-px images take seconds on first use and nothing afterwards (content does not
    change a throughput figure; JPEG decoding of the upscaled images is, if anything, a little
    cheaper than of camera images)."""
    from agebench.data.cache import cached_array
    from agebench.data.records import normalise
    from agebench.data.render import RENDERER_VERSION, SyntheticSpec, generate
    from agebench.paths import cache_dir

    per_subject = 4
    render = min(int(size), 128)
    spec = SyntheticSpec(n_subjects=max(1, math.ceil(n_images / per_subject)), images_per_subject=per_subject,
                         image_size=render, seed=seed)

    def build() -> np.ndarray:
        return _resize(generate(spec)[0][:n_images], int(size))

    images, _ = cached_array(cache_dir(), {"dataset": "benchmark-synthetic", "spec": repr(spec), "n": int(n_images),
                                           "size": int(size), "renderer": RENDERER_VERSION}, build, prefix="benchmark")
    records = normalise(_labels_only(spec).iloc[:n_images].reset_index(drop=True), "synthetic")
    return images, records


def _labels_only(spec):
    from dataclasses import replace

    from agebench.data.render import generate

    # labels do not depend on the image size (independent random streams): render tiny images
    return generate(replace(spec, image_size=8))[1]


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for start in range(0, len(images), 64):
        x = torch.from_numpy(images[start:start + 64]).permute(0, 3, 1, 2).float()
        y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out[start:start + 64] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def task_setup(cfg, records):
    """(tasks, {task: float32 targets}) for the composed config's task set."""
    from agebench.tasks.base import targets_for
    from agebench.tasks.factory import build_tasks

    tasks = build_tasks(cfg.tasks)
    return tasks, targets_for(tasks, records)


class PlainLoop:
    """The hand-written PyTorch side of the benchmarks: images preloaded as one uint8 tensor on the
    device, indexed by a seeded permutation, the same device-side crop/flip/normalise and the same
    task losses as agebench, no framework. `train_epoch` also does what agebench does once per epoch
    (a loss check and the LR-schedule step), so both sides do the same work."""

    def __init__(self, model: torch.nn.Module, tasks, weights: dict, images, targets: dict, image_size: int,
                 batch: int, device: torch.device, channels_last: bool, precision: str, seed: int):
        self.model = model.to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.tasks, self.weights, self.size, self.batch = list(tasks), dict(weights), int(image_size), int(batch)
        self.device, self.channels_last, self.seed = device, bool(channels_last), int(seed)
        self.images = torch.from_numpy(np.array(images)).to(device)
        self.targets = {k: torch.from_numpy(v).to(device) for k, v in targets.items()}
        self.autocast = autocast(precision, device)
        self.scaler = torch.amp.GradScaler(device.type) if str(precision).startswith("16") else None

    def train_epoch(self, epoch: int, optimizer, scheduler, rows=None) -> float:
        """One training epoch over `rows` (default: every image); returns its seconds."""
        from agebench.data.augment import random_crop_flip, to_float_nchw

        rows = torch.arange(len(self.images)) if rows is None else torch.as_tensor(rows)
        gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        aug = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        self.model.train()
        sync(self.device)
        start = time.perf_counter()
        order = rows[torch.randperm(len(rows), generator=gen)].to(self.device)
        loss_sum = None
        for i in range(0, len(order), self.batch):
            idx = order[i:i + self.batch]
            x = to_float_nchw(random_crop_flip(self.images[idx], self.size, aug), self.channels_last)
            with self.autocast:
                out = self.model(x)
                loss = sum(self.weights[t.name] * t.loss(out[t.name], self.targets[t.name][idx]) for t in self.tasks)
            optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:  # 16-mixed: loss scaling, as Lightning does
                self.scaler.scale(loss).backward()
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        if loss_sum is not None and not math.isfinite(float(loss_sum)):
            raise RuntimeError("plain loop diverged")
        scheduler.step()
        sync(self.device)
        return time.perf_counter() - start

    @torch.no_grad()
    def evaluate(self, rows) -> tuple[float, dict[str, float]]:
        """(mean weighted loss, {task/metric: value}) over `rows`, centre crops, the tasks' own metrics."""
        from agebench.data.augment import center_crop, to_float_nchw

        self.model.eval()
        rows = torch.as_tensor(rows).to(self.device)
        outputs: dict[str, list] = {t.name: [] for t in self.tasks}
        loss_sum = 0.0
        for i in range(0, len(rows), self.batch):
            idx = rows[i:i + self.batch]
            x = to_float_nchw(center_crop(self.images[idx], self.size), self.channels_last)
            with self.autocast:
                out = self.model(x)
                loss = sum(self.weights[t.name] * t.loss(out[t.name], self.targets[t.name][idx]) for t in self.tasks)
            loss_sum = loss_sum + loss.float() * len(idx)
            for t in self.tasks:
                outputs[t.name].append(out[t.name].float())
        metrics = {}
        for t in self.tasks:
            output = torch.cat(outputs[t.name]).cpu()
            target = self.targets[t.name][rows].cpu()
            metrics.update({f"{t.name}/{k}": v for k, v in t.metrics(output, target).items()})
        return float(loss_sum) / max(1, len(rows)), metrics


def same_optimizer(reference: torch.optim.Optimizer, model: torch.nn.Module) -> torch.optim.Optimizer:
    """A fresh optimizer of the reference's class and hyper-parameters over `model`'s parameters."""
    import inspect

    accepted = inspect.signature(type(reference).__init__).parameters
    defaults = {k: v for k, v in reference.defaults.items() if k in accepted}
    return type(reference)(model.parameters(), **defaults)


def autocast(precision: str, device: torch.device):
    """The autocast context a Lightning `precision` string implies."""
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return torch.autocast(device.type, enabled=False)


# ------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------
def table(header_row: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header_row)]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header_row), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])


def top_ops(fn, device: torch.device, rows: int = 12) -> list[dict]:
    """torch.profiler's top operators (by self time) of one call of `fn`: where the time goes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1.0
    return [{"op": e.key, "self_ms": round(getattr(e, key) / 1e3, 2), "share": round(getattr(e, key) / total, 4),
             "calls": int(e.count)} for e in events[:rows]]


def format_ops(ops: list[dict]) -> str:
    return table(["op", "self ms", "share", "calls"],
                 [[o["op"][:48], f"{o['self_ms']:.1f}", f"{100 * o['share']:.1f}%", o["calls"]] for o in ops])
