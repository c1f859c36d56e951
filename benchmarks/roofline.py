"""roofline: achieved FLOP/s of a model, as a fraction of this machine's measured fp32 matmul rate.

FLOPs come from agebench.models.profile.gmacs (torch.utils.flop_counter: convolutions and linear layers; 1 MAC
= 2 FLOPs). Conventions: inference FLOP/s = 2 · GMACs · images/s; training FLOP/s = 3 · 2 · GMACs ·
images/s (backward ≈ 2× forward: gradients w.r.t. activations and weights; the optimizer step, BN,
pooling, LRN and activations add time but no counted FLOPs). The peak is a square fp32 matmul
(2048² on CPU, 8192² on GPU) timed in the same run, same threads, interleaved with the model timings.

Inference: eval mode, inference_mode, batch `--batch`. Training: forward + loss + backward + AdamW
step (fused, as agebench's), batch `--batch`. Variants: NCHW, channels_last, and (default mode, or
--compile) channels_last + torch.compile; the headline uses the layout the trainer config picks for
this device (`trainer.channels_last`), the best variant is shown beside it.
Targets on CPU (LMTCNN-1-1 at 227): inference ≥ 50 %, training ≥ 35 % of the matmul rate.
Where a target is missed, the profiler's top operators of that kind of call say where the time goes.
Note: on CPUs where oneDNN's convolutions use wider vector units than the BLAS sgemm (MKL on AMD runs
its AVX2 path), a conv-heavy model can exceed 100 % of this "peak"; it is a measured rate, not a spec.

    python benchmarks/roofline.py [--quick] [--model lmtcnn_1_1] [--batch 64] [--[no-]compile]
"""

from __future__ import annotations

import argparse

import common
import torch

TARGETS = {"inference": 0.50, "training": 0.35}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--model", default="lmtcnn_1_1")
    p.add_argument("--size", type=int, default=None, help="input size (default: the model's paper resolution)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64; 32 with --quick)")
    p.add_argument("--no-profile", action="store_true", help="skip the operator profile")
    p.add_argument("--compile", default=None, action=argparse.BooleanOptionalAction,
                   help="also time torch.compile'd models (channels_last; what trainer.compile=true gives; about a "
                        "minute of compiling on 2 cores). Default: on, off with --quick")
    args = p.parse_args()
    device, threads, meta = common.start(args, "roofline: achieved FLOP/s ÷ measured fp32 matmul FLOP/s")

    from agebench.models.profile import gmacs

    cfg = common.compose([*common.model_overrides(args.model), "tasks=age_gender", "logger=none",
                          f"trainer={'gpu' if device.type == 'cuda' else 'cpu'}"])
    size = int(args.size or cfg.model.input_size)
    batch = int(args.batch or (32 if args.quick else 64))
    reps = int(args.reps or common.MIN_REPS)
    tasks, _ = common.task_setup(cfg, _fake_records(batch))
    macs = gmacs(common.build_model(cfg, tasks, size), size).total
    config_layout = "channels_last" if bool(cfg.trainer.channels_last) else "nchw"

    runners = {layout: Runner(cfg, tasks, size, batch, device, layout == "channels_last") for layout in ("nchw", "channels_last")}
    if args.compile if args.compile is not None else not args.quick:
        runners["channels_last+compile"] = Runner(cfg, tasks, size, batch, device, True, compile=True)
    samples = {f"{layout}/{kind}": [] for layout in runners for kind in ("inference", "training")}
    peaks = []
    for rep in range(reps + 1):  # rep 0: warm-up
        peak = common.matmul_gflops(device)
        rates = {f"{layout}/{kind}": getattr(r, kind)() for layout, r in runners.items() for kind in ("inference", "training")}
        peak = (peak + common.matmul_gflops(device)) / 2  # bracket the model timings
        if rep:
            peaks.append(peak)
            for key, img_s in rates.items():
                flops = 2 * macs * img_s * (3 if key.endswith("training") else 1)
                samples[key].append({"img_s": img_s, "gflops": flops, "fraction": flops / peak})

    def med(key, field):
        return common.median(s[field] for s in samples[key])

    rows = []
    for key in samples:
        layout, kind = key.split("/")
        mark = " (config)" if layout == config_layout else ""
        rows.append([f"{kind} · {layout}{mark}", f"{med(key, 'img_s'):.1f}", f"{med(key, 'gflops'):.1f}",
                     common.spread([100 * s["fraction"] for s in samples[key]])])
    print()
    print(f"   {args.model} at {size}×{size}: {macs:.4f} GMACs/image (forward), batch {batch}; "
          f"fp32 matmul peak {common.median(peaks):.1f} GFLOP/s (median of {len(peaks)})")
    print()
    print(common.table(["measurement", "images/s", "GFLOP/s", "% of matmul med [min–max]"], rows))

    headline = {kind: med(f"{config_layout}/{kind}", "fraction") for kind in ("inference", "training")}
    best = {kind: max((med(f"{lay}/{kind}", "fraction"), lay) for lay in runners) for kind in ("inference", "training")}
    ops = {}
    missed = [k for k in TARGETS if headline[k] < TARGETS[k]]
    if not args.no_profile:
        runner = runners[config_layout]
        for kind in missed:  # where the time goes when a target is missed
            ops[kind] = common.top_ops(getattr(runner, kind), device)
            print(f"\n   top operators of one {kind} call ({config_layout}, {runner.iters[kind]} × batch {batch}):")
            print("   " + common.format_ops(ops[kind]).replace("\n", "\n   "))

    payload = {"model": args.model, "input_size": size, "batch": batch, "reps": reps, "gmacs": macs,
               "flop_convention": "inference 2*GMACs*img/s; training 3*2*GMACs*img/s (optimizer excluded from FLOPs)",
               "matmul_gflops": peaks, "config_layout": config_layout, "samples": samples,
               "fraction": headline, "best": {k: {"fraction": v[0], "variant": v[1]} for k, v in best.items()},
               "targets": TARGETS, "top_ops": ops}
    common.record_result("roofline", args, meta, payload)
    print(f"   best layout: inference {100 * best['inference'][0]:.1f}% ({best['inference'][1]}), training "
          f"{100 * best['training'][0]:.1f}% ({best['training'][1]}), medians")
    print(f"roofline ratios ({config_layout}, % of the fp32 matmul rate measured around each repetition): " + "; ".join(
        common.ratio_line(kind, [100 * s["fraction"] for s in samples[f"{config_layout}/{kind}"]],
                          100 * TARGETS[kind], fmt=".1f", unit="%") for kind in ("inference", "training")))


class Runner:
    """Timed inference and training calls of one model in one memory layout."""

    def __init__(self, cfg, tasks, size, batch, device, channels_last: bool, compile: bool = False):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.module = common.build_model(cfg, tasks, size).to(device).to(memory_format=fmt)
        self.model = torch.compile(self.module) if compile else self.module
        self.x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
        self.targets = _fake_targets(tasks, batch, device)
        self.tasks, self.device, self.batch = tasks, device, batch
        self.opt = torch.optim.AdamW(self.module.parameters(), lr=1e-4, weight_decay=5e-4, fused=True)
        self.iters = {"inference": 1, "training": 1}
        self._calibrate()

    def _calibrate(self, seconds: float = 1.0):
        """Enough iterations per timing call that one call lasts about `seconds`."""
        for kind in ("inference", "training"):
            self.iters[kind] = 1
            getattr(self, kind)()  # warm-up (and compilation)
            rate = getattr(self, kind)()
            self.iters[kind] = max(1, int(round(seconds * rate / self.batch)))

    def _step(self):
        out = self.model(self.x)
        loss = sum(t.loss(out[t.name], self.targets[t.name]) for t in self.tasks)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def training(self) -> float:
        self.module.train()
        seconds = common.timed(lambda: [self._step() for _ in range(self.iters["training"])], self.device)
        return self.batch * self.iters["training"] / seconds

    def inference(self) -> float:
        self.module.eval()
        with torch.inference_mode():
            seconds = common.timed(lambda: [self.model(self.x) for _ in range(self.iters["inference"])], self.device)
        return self.batch * self.iters["inference"] / seconds


def _fake_records(n: int):
    import pandas as pd

    from agebench.data.records import normalise

    return normalise(pd.DataFrame({"subject": [f"s{i}" for i in range(n)], "age": [float(5 + i % 70) for i in range(n)],
                                   "gender": [i % 2 for i in range(n)], "race": [i % 5 for i in range(n)],
                                   "image": [f"i{i}" for i in range(n)]}), "synthetic")


def _fake_targets(tasks, batch, device):
    from agebench.tasks.base import targets_for

    return {k: torch.from_numpy(v).to(device) for k, v in targets_for(tasks, _fake_records(batch)).items()}


if __name__ == "__main__":
    main()
