"""What a model costs: parameters, GMACs, file size, latency and throughput (the measuring library).

Every function leaves the model as it found it (mode, device, thread count):
- `count_params(model)` → (total, trainable).
- `gmacs(model, input_size)` → `MacCount(total, per_module)`: multiply-accumulates of one forward pass
  at batch 1, from `torch.utils.flop_counter.FlopCounterMode` (GMACs = FLOPs / 2 / 10⁹). That counter
  counts convolutions (depthwise and grouped ones at their true cost), matmuls/linear layers and
  attention; batch norm, activations, pooling, LRN and element-wise ops are *not* counted (they are
  a few % of a conv net's arithmetic and none of its MACs).
- `model_size_mb(model)`: the fp32 state dict saved with `torch.save`, size on disk in MB (10⁶ bytes,
  the unit of seed 000 Table 4). BN running statistics are included, as in any saved model.
- `latency_ms(model, input_size, iters, warmup, threads, oversample)` → {"median", "p90"} in ms of
  per-call batch-1 timings (eval mode, no grad, `torch.set_num_threads(threads)` while timing).
  `oversample=True` times seed 000's evaluation of one image instead: ten crops (four corners +
  centre, and mirrors) cut from the image resized to 256/227 of the input size, one batch-10 forward,
  softmax scores averaged.
- `throughput(model, input_size, batch)` → images/s of batch-`batch` forward passes.
- `profile_model(model, input_size, ...)` bundles them with the device, thread count and torch
  version. `profile_model(model, size, latency_iters=k)` is the cheap call the training loop makes for
  the run record (`params`, `gmacs`, `size_mb`, `latency_ms`); the `agebench profile` command
  (agebench/evaluation/profile_models.py) adds the 10-crop figure and throughput.

This module builds no model and reads no config: it measures the `nn.Module` it is given.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import tempfile
import time
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from agebench.errors import UserError


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; tensors shared between modules count once."""
    seen: dict[int, nn.Parameter] = {}
    for p in model.parameters():
        seen.setdefault(id(p), p)
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return int(total), int(trainable)


class MacCount(NamedTuple):
    total: float                   # GMACs of one batch-1 forward pass
    per_module: dict[str, float]   # GMACs per top-level child module (+ "(other)" for functional ops)


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _dummy(input_size: int, batch: int, device) -> torch.Tensor:
    return torch.randn(batch, 3, int(input_size), int(input_size), device=device)


def _top_level(model: nn.Module) -> tuple[str, nn.Module]:
    """(dotted prefix, module) whose children are the rows of the per-module table: the model itself,
    or — while it has a single child (a wrapper such as PerTaskNets.nets) — that child."""
    prefix, module = type(model).__name__, model
    children = list(module.named_children())
    while len(children) == 1 and list(children[0][1].children()):
        name, module = children[0]
        prefix = f"{prefix}.{name}"
        children = list(module.named_children())
    return prefix, module


def gmacs(model: nn.Module, input_size: int, per_module: bool = True) -> MacCount:
    """GMACs of one batch-1 forward pass (FlopCounterMode FLOPs / 2 / 1e9), total and per top-level module."""
    from torch.utils.flop_counter import FlopCounterMode

    with _eval_mode(model):
        counter = FlopCounterMode(display=False)
        with counter:
            model(_dummy(input_size, 1, _device_of(model)))
    total = counter.get_total_flops() / 2 / 1e9
    rows: dict[str, float] = {}
    if per_module:
        flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
        prefix, module = _top_level(model)
        for name, _ in module.named_children():
            key = f"{prefix}.{name}"
            if key in flops:
                value = flops[key]
            else:  # containers such as ModuleDict are never "called": sum their shallowest called members
                below = {k: v for k, v in flops.items() if k.startswith(key + ".")}
                depth = min((k.count(".") for k in below), default=0)
                value = sum(v for k, v in below.items() if k.count(".") == depth)
            if value:
                rows[name] = value / 2 / 1e9
        other = total - sum(rows.values())
        if other > 1e-9 * max(total, 1e-12) and other > 1e-12:
            rows["(other)"] = other
    return MacCount(float(total), rows)


def model_size_mb(model: nn.Module) -> float:
    """Size on disk of the fp32 state dict, in MB (10⁶ bytes)."""
    state = {k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    fd, path = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
        torch.save(state, path)
        return os.path.getsize(path) / 1e6
    finally:
        os.unlink(path)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _average_ten_crops(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in outputs.items():
        value = value.view(-1, 10, value.shape[-1])
        out[key] = value.softmax(-1).mean(1) if value.shape[-1] > 1 else value.mean(1)
    return out


def latency_ms(model: nn.Module, input_size: int, iters: int = 30, warmup: int = 5, threads: int | None = 1,
               oversample: bool = False) -> dict[str, float]:
    """Median and 90th percentile (ms) of per-call batch-1 inference times (see module docstring)."""
    from agebench.data.augment import ten_crop

    device = _device_of(model)
    size = int(input_size)
    if oversample:
        image = _dummy(round(size * 256 / 227), 1, device)

        def call():
            return _average_ten_crops(model(ten_crop(image, size)))
    else:
        x = _dummy(size, 1, device)

        def call():
            return model(x)

    times: list[float] = []
    with _threads(threads), _eval_mode(model):
        for _ in range(max(0, int(warmup))):
            call()
        _sync(device)
        for _ in range(max(1, int(iters))):
            start = time.perf_counter()
            call()
            _sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    return {"median": float(statistics.median(times)), "p90": float(np.percentile(times, 90))}


def throughput(model: nn.Module, input_size: int, batch: int = 32, iters: int = 3, warmup: int = 1,
               threads: int | None = None) -> float:
    """Images per second of batch-`batch` forward passes (eval mode, no grad)."""
    device = _device_of(model)
    x = _dummy(input_size, int(batch), device)
    with _threads(threads), _eval_mode(model):
        for _ in range(max(0, int(warmup))):
            model(x)
        _sync(device)
        start = time.perf_counter()
        for _ in range(max(1, int(iters))):
            model(x)
        _sync(device)
        elapsed = time.perf_counter() - start
    return float(int(batch) * max(1, int(iters)) / elapsed)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu ({name}, {os.cpu_count()} logical cores)"


def _resolve_device(device) -> torch.device:
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={device}: CUDA is not available on this machine; use device=cpu")
    return dev


def profile_model(model: nn.Module, input_size: int, latency_iters: int = 10, warmup: int = 2,
                  threads: int | None = 1, oversample: bool = False, throughput_batch: int | None = None,
                  throughput_iters: int = 3, throughput_threads: int | None = None, device=None,
                  per_module: bool = True) -> dict:
    """Every figure of `agebench profile` for one model, as a flat JSON-able dict.

    Works on a copy (moved to `device`, default: where the model is), so the caller's model keeps its
    mode, device and weights. Keys: params, trainable_params, gmacs, gmacs_per_module, size_mb,
    latency_ms, latency_p90_ms, [latency_oversample_ms, latency_oversample_p90_ms], [throughput,
    throughput_batch], input_size, latency_iters, device, threads, torch."""
    dev = _resolve_device(device) or _device_of(model)
    model = copy.deepcopy(model).to(dev)
    total, trainable = count_params(model)
    macs = gmacs(model, input_size, per_module=per_module)
    lat = latency_ms(model, input_size, iters=latency_iters, warmup=warmup, threads=threads)
    used_threads = int(threads) if threads else torch.get_num_threads()
    out: dict = {
        "params": total,
        "trainable_params": trainable,
        "gmacs": macs.total,
        "gmacs_per_module": macs.per_module,
        "size_mb": model_size_mb(model),
        "latency_ms": lat["median"],
        "latency_p90_ms": lat["p90"],
    }
    if oversample:
        lat10 = latency_ms(model, input_size, iters=latency_iters, warmup=warmup, threads=threads, oversample=True)
        out["latency_oversample_ms"] = lat10["median"]
        out["latency_oversample_p90_ms"] = lat10["p90"]
    if throughput_batch:
        out["throughput"] = throughput(model, input_size, int(throughput_batch), iters=throughput_iters,
                                       threads=throughput_threads)
        out["throughput_batch"] = int(throughput_batch)
    out.update({
        "input_size": int(input_size),
        "latency_iters": int(latency_iters),
        "device": describe_device(dev),
        "threads": int(used_threads),
        "torch": torch.__version__,
    })
    return out
