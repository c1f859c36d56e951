"""latency: batch-1 and 10-crop latency per architecture, seed 000 Table 5 / seed 003 Table 2 style.

Rows are the entries of agebench's profile sets (conf/profile_set/seed000.yaml, seed003.yaml,
seed004.yaml: each model built exactly as `agebench train` with those overrides builds it) and the
figures come from agebench.models.profile: batch-1 latency = median (and p90) of per-call eval-mode forward
passes; 10-crop = seed 000's evaluation of one image (4 corners + centre and their mirrors, one
batch-10 forward, scores averaged). The papers timed whole apps on phones (seed 000: Atom x5 /
Snapdragon 625) and a desktop (seed 003), so only the ratios between rows compare; the last line
prints them (Levi–Hassner ÷ LMTCNN-1-1, Levi–Hassner ÷ the lightweight joint model), each the median of
`--reps` (default 5) rounds in which the compared models are timed one after another, with its range.

    python benchmarks/latency.py [--quick] [--threads 1] [--sets seed000,seed003,seed004]
"""

from __future__ import annotations

import common

PAPER_SPEEDUP = {"LMTCNN-1-1": 4800 / 204.7, "lightweight": 0.09 / 0.01}


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--sets", default="seed000,seed003,seed004", help="profile sets (conf/profile_set/<name>.yaml)")
    p.set_defaults(threads=1)
    args = p.parse_args()
    device, threads, meta = common.start(args, "latency: batch-1 and 10-crop forward latency per architecture")

    from omegaconf import OmegaConf

    from agebench.config.compose import compose_config
    from agebench.models.profile import latency_ms, profile_model
    from agebench.paths import conf_dir
    from agebench.tasks.factory import build_tasks
    from agebench.training.builders import build_model

    iters = 10 if args.quick else 30
    rounds = int(args.reps or common.MIN_REPS)
    built: dict[tuple, tuple] = {}  # overrides → (model, input size), for the speed-up rounds
    warmup = 2 if args.quick else 5
    measured: dict[tuple, dict] = {}
    results, rows = [], []
    for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        spec = OmegaConf.to_container(OmegaConf.load(conf_dir() / "profile_set" / f"{set_name}.yaml"), resolve=False)
        for entry in spec["models"]:
            overrides = [str(o) for o in entry["overrides"]]
            key = tuple(overrides)
            if key not in measured:
                cfg = compose_config(overrides, config_name="profile")
                size = int(cfg.data.image_size)
                tasks = build_tasks(cfg.tasks)
                model = build_model(cfg, tasks).to(device)
                built[key] = (model, size)
                measured[key] = profile_model(model, size, latency_iters=iters, warmup=warmup, threads=threads,
                                              oversample=True, device=str(device), per_module=False)
            fig = measured[key]
            label = str(entry.get("label") or overrides[0])
            paper = dict(entry.get("paper") or {})
            results.append({"set": set_name, "label": label, "overrides": overrides, "paper": paper,
                            **{k: fig[k] for k in ("params", "gmacs", "size_mb", "input_size", "latency_ms",
                                                  "latency_p90_ms", "latency_oversample_ms")}})
            paper_ms = {k: v for k, v in paper.items() if k.endswith(("_ms", "_s"))}
            rows.append([set_name, label, fig["input_size"], f"{fig['params']:,}", f"{fig['gmacs']:.3f}",
                         f"{fig['latency_ms']:.2f} / {fig['latency_p90_ms']:.2f}", f"{fig['latency_oversample_ms']:.2f}",
                         ", ".join(f"{k}={v}" for k, v in paper_ms.items()) or "-"])
    print()
    print(common.table(["set", "model", "input", "params", "GMACs", "batch-1 ms med / p90", "10-crop ms",
                        "paper (their hardware)"], rows))
    print(f"\n   device: {meta['device']} · threads: {threads} · torch {meta['torch']} · {iters} timed calls "
          f"after {warmup} warm-up, eval mode, no grad")

    def find(text: str):
        hits = [r for r in results if r["label"].startswith(text)]
        return hits[0] if hits else None

    levi = find("Levi_Hassner") or find("Levi et al")
    compared = {name: find(label) for name, label in (("LMTCNN-1-1", "LMTCNN-1-1"), ("lightweight", "Ours (joint"))}
    compared = {name: row for name, row in compared.items() if levi and row}
    # the speed-ups: in each round Levi–Hassner and the compared models are timed one after another, so a
    # load change hits them alike; a ratio is the median of the rounds' ratios
    per_round = {name: {"batch1": [], "ten_crop": []} for name in compared}
    round_iters = max(3, iters // 3)
    for _ in range(rounds if compared else 0):
        times = {}
        for row in [levi, *compared.values()]:
            model, size = built[tuple(row["overrides"])]
            times[row["label"]] = [latency_ms(model, size, iters=round_iters, warmup=1, threads=threads,
                                              oversample=ten)["median"] for ten in (False, True)]
        for name, row in compared.items():
            per_round[name]["batch1"].append(times[levi["label"]][0] / times[row["label"]][0])
            per_round[name]["ten_crop"].append(times[levi["label"]][1] / times[row["label"]][1])
    ratios = {name: {"batch1": common.median(r["batch1"]), "ten_crop": common.median(r["ten_crop"]),
                     "batch1_rounds": r["batch1"], "ten_crop_rounds": r["ten_crop"], "paper": PAPER_SPEEDUP[name]}
              for name, r in per_round.items()}
    payload = {"iters": iters, "warmup": warmup, "rounds": rounds, "round_iters": round_iters, "rows": results,
               "speedups_vs_levi_hassner": ratios}
    common.record_result("latency", args, meta, payload)
    parts = [common.ratio_line(f"Levi–Hassner ÷ {name} {kind} (paper {r['paper']:.1f}×)", r[f"{key}_rounds"],
                               fmt=".1f", unit="×")
             for name, r in ratios.items() for kind, key in (("batch-1", "batch1"), ("10-crop", "ten_crop"))]
    print("latency ratios: " + ("; ".join(parts) if parts else "n/a (Levi–Hassner or the compared model not in the sets)"))


if __name__ == "__main__":
    main()
