"""`agebench profile` (conf/profile.yaml): the cost figures of one model, or a table of many.

It profiles one model, or every model of a *profile set*: `profile_set=<name>`
(conf/profile_set/<name>.yaml) or a training recipe with a `profile_models:` list
(`experiment=<recipe>`; a recipe with `variants:` and no list gives one row per variant). Either list
holds entries
    {label: <row name>, overrides: [<hydra overrides, e.g. model=lmtcnn "model.width=[2,1]">],
     paper: {<column>: <the paper's figure>, ...}}
each composed like the command line (the user's own overrides apply to every entry, except model/
tasks ones, which the entry owns), and printed as one table with the paper's figures beside ours.

Models are built through `agebench.training.builders.build_model(cfg, tasks)` (the network `agebench train`
trains for the same config) and measured by `agebench.models.profile` (the library: params, GMACs, size,
latency, throughput); this module composes configs and formats tables.
"""

from __future__ import annotations

from agebench.errors import UserError
from agebench.models.profile import profile_model

_ENTRY_OWNED = ("model", "tasks", "profile_set", "experiment")


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def profile_config(cfg) -> dict:
    """The figures of the one model that config `cfg` describes (a JSON-able dict)."""
    from agebench.tasks.factory import build_tasks
    from agebench.training.builders import build_model, model_options, resolve_sizes

    tasks = build_tasks(cfg.tasks)
    image_size = resolve_sizes(cfg).image_size  # the size build_model builds at (agebench/training/builders.py)
    options = model_options(cfg.model)
    model = build_model(cfg, tasks)
    lat, thr = cfg.latency, cfg.throughput
    figures = profile_model(
        model, image_size, latency_iters=int(lat.iters), warmup=int(lat.warmup), threads=lat.threads,
        oversample=bool(lat.oversample), throughput_batch=int(thr.batch or 0) or None,
        throughput_iters=int(thr.iters), throughput_threads=thr.threads, device=str(cfg.device),
        per_module=bool(cfg.get("per_module", True)),
    )
    runtime = str(cfg.get("runtime") or "torch")
    if runtime not in ("torch", "onnxruntime"):
        raise UserError(f"runtime={runtime!r}; choose torch or onnxruntime")
    if runtime == "onnxruntime":  # the exported model in ONNX Runtime, as small devices run it (agebench/evaluation/export.py)
        from agebench.evaluation.export import onnxruntime_latency

        figures.update(onnxruntime_latency(model, cfg, tasks, iters=int(lat.iters), warmup=int(lat.warmup),
                                           threads=lat.threads))
    return {"model": str(cfg.model.name), "model_options": options, "tasks": [t.name for t in tasks],
            "outputs": {t.name: t.num_outputs for t in tasks}, **figures}


def profile_entries(cfg) -> tuple[str, str, list] | None:
    """(set name, title, entries) when the config asks for a profile set, else None."""
    from omegaconf import OmegaConf

    if cfg.get("profile_set"):
        ps = cfg.profile_set
        from hydra.core.hydra_config import HydraConfig

        name = HydraConfig.get().runtime.choices.get("profile_set") if HydraConfig.initialized() else None
        return str(name or "profile_set"), str(ps.get("title", "")), list(OmegaConf.to_container(ps.models, resolve=False))
    if cfg.get("profile_models"):
        return (str(cfg.get("experiment_name", "experiment")), str(cfg.get("profile_title", "")),
                list(OmegaConf.to_container(cfg.profile_models, resolve=False)))
    if cfg.get("variants"):  # a training recipe: one row per variant, composed exactly as `train` does
        from hydra.core.hydra_config import HydraConfig

        recipe = HydraConfig.get().runtime.choices.get("experiment") if HydraConfig.initialized() else None
        recipe = str(recipe or cfg.experiment_name)
        entries = [{"label": str(name), "overrides": [f"experiment={recipe}", *map(str, overrides), "variants=null"]}
                   for name, overrides in cfg.variants.items()]
        return recipe, f"models of experiment={recipe}", entries
    return None


def profile_set_rows(entries: list, overrides: list[str]) -> list[dict]:
    from agebench.config.compose import compose_config

    base = [o for o in overrides if _override_key(o).split(".")[0] not in _ENTRY_OWNED]
    rows = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("overrides"):
            raise UserError(f"profile set entry {i} needs `overrides: [model=..., ...]` (and a `label`)")
        sub = compose_config([*base, *map(str, entry["overrides"])], config_name="profile")
        row = profile_config(sub)
        rows.append({"label": str(entry.get("label") or row["model"]), "paper": dict(entry.get("paper") or {}), **row})
    return rows


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value >= 1e5 and value.is_integer():
            return f"{int(value):,}"
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _cost_cells(r: dict) -> list[str]:
    return [
        _fmt(r["params"]), _fmt(r["trainable_params"]), _fmt(r["gmacs"], 3), _fmt(r["size_mb"]),
        f"{_fmt(r['latency_ms'])} / {_fmt(r['latency_p90_ms'])}",
        _fmt(r.get("latency_oversample_ms")), _fmt(r.get("throughput"), 1),
    ]


_COST_HEADER = ["params", "trainable", "GMACs", "size MB", "ms med/p90", "10-crop ms", "img/s"]


def _footer(r: dict) -> str:
    batch = f", throughput at batch {r['throughput_batch']}" if r.get("throughput_batch") else ""
    ort = (f"\nonnxruntime {r['onnxruntime']} (CPU): batch-1 latency {_fmt(r['ort_latency_ms'])} ms median, "
           f"{_fmt(r['ort_latency_p90_ms'])} ms p90" if r.get("ort_latency_ms") is not None else "")
    return (f"device: {r['device']} · threads: {r['threads']} · torch {r['torch']} · "
            f"batch-1 latency over {r['latency_iters']} runs{batch}{ort}")


def format_single(r: dict) -> str:
    title = f"{r['model']}  tasks={','.join(r['tasks'])}  input={r['input_size']}×{r['input_size']}"
    out = [title, "", _table(_COST_HEADER, [_cost_cells(r)])]
    if r.get("gmacs_per_module"):
        total = r["gmacs"] or 1.0
        rows = [[name, _fmt(v, 4), f"{100 * v / total:.1f}%"] for name, v in r["gmacs_per_module"].items()]
        out += ["", _table(["module", "GMACs", "share"], rows)]
    out += ["", _footer(r)]
    return "\n".join(out)


def format_set(name: str, title: str, rows: list[dict]) -> str:
    paper_cols: list[str] = []
    for r in rows:
        paper_cols += [c for c in r["paper"] if c not in paper_cols]
    ort = any(r.get("ort_latency_ms") is not None for r in rows)  # runtime=onnxruntime: one more column
    header = ["model", "tasks", "input", *_COST_HEADER, *(["ORT ms med/p90"] if ort else []),
              *(f"paper {c}" for c in paper_cols)]
    body = [[r["label"], ",".join(r["tasks"]), str(r["input_size"]), *_cost_cells(r),
             *([f"{_fmt(r.get('ort_latency_ms'))} / {_fmt(r.get('ort_latency_p90_ms'))}"] if ort else []),
             *(_fmt(r["paper"].get(c)) for c in paper_cols)] for r in rows]
    head = [f"profile set {name}" + (f": {title}" if title else ""), ""]
    footer = _footer({**rows[0], "ort_latency_ms": None}) + (f" · ORT: onnxruntime {rows[0]['onnxruntime']} (CPU)" if ort else "")
    return "\n".join([*head, _table(header, body), "", footer])
