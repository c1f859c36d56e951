"""`action=status` (a text report of the study) and `action=export` (trials CSV, plots, an HTML page)."""

from __future__ import annotations

import html
import math
import time
import warnings
from pathlib import Path

from agebench.sweeps import worker_errors
from agebench.sweeps.spec import SweepSpec
from agebench.sweeps.storage import FAIL_KIND, FAIL_REASON, RETRY_OF, display_url, last_sign_of_life
from agebench.sweeps.study import BUDGET_ATTR, TRIAL_DIR, count_trials

MAX_ROWS = 10


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _params_text(trial) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items()) or "(no params)"


def best_trials(study, spec: SweepSpec):
    """The best trial (single objective) or the Pareto set (multi-objective), best first."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    if spec.multi_objective:
        return sorted(study.best_trials, key=lambda t: t.number)
    return [study.best_trial]


def importances(study, spec: SweepSpec) -> dict[str, dict[str, float] | str]:
    """Parameter importances per objective (fANOVA), or a reason why there are none."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out: dict[str, dict[str, float] | str] = {}
    for i, objective in enumerate(spec.objectives):
        if len(complete) < 2:
            out[objective.metric] = f"needs >= 2 complete trials (has {len(complete)})"
            continue
        if not spec.space.params:
            out[objective.metric] = "no swept parameters"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[objective.metric] = optuna.importance.get_param_importances(
                    study, target=(lambda t, i=i: t.values[i]) if spec.multi_objective else None)
        except Exception as err:  # e.g. every complete trial has the same parameters
            out[objective.metric] = f"not available ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    return out


def _trial_row(trial, spec: SweepSpec) -> str:
    values = "  ".join(f"{m}={_fmt(v)}" for m, v in zip(spec.metric_names, trial.values or [], strict=False))
    return f"  #{trial.number:<4d} {values}  {_params_text(trial)}"


def status_text(study, spec: SweepSpec) -> str:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = count_trials(trials)
    budget = study.user_attrs.get(BUDGET_ATTR, spec.n_trials)
    lines = [f"study {spec.study_name!r} (sweep {spec.name}) in {display_url(spec.storage_url())}",
             "objectives: " + ", ".join(f"{o.direction} {o.metric}" for o in spec.objectives)
             + (f"; pruner {spec.pruner_cfg.get('name')}" if spec.prunes else ""),
             f"budget: {counts.budget_used}/{budget} trials used"
             + (f" (set by the last worker; this command's sweep.n_trials is {spec.n_trials})"
                if budget != spec.n_trials else "")
             + (f" (+{counts.retried} requeued after their worker stopped)" if counts.retried else "")
             + (f" (+{counts.discarded} discarded grid duplicates)" if counts.discarded else ""),
             "trials by state: " + (", ".join(f"{s} {n}" for s, n in sorted(counts.by_state.items())) or "none yet")]
    best = best_trials(study, spec)
    if best:
        title = "Pareto set" if spec.multi_objective else "best trial"
        lines.append(f"{title} ({len(best)}):" if spec.multi_objective else f"{title}:")
        lines += [_trial_row(t, spec) for t in best[:MAX_ROWS * 2]]
        if not spec.multi_objective:
            lines.append(f"  dir: {best[0].user_attrs.get(TRIAL_DIR, spec.trial_dir(best[0].number))}")
            ranked = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                            key=lambda t: t.values[0], reverse=spec.directions[0] == "maximize")
            if len(ranked) > 1:
                lines.append(f"top {min(MAX_ROWS, len(ranked))} complete trials:")
                lines += [_trial_row(t, spec) for t in ranked[:MAX_ROWS]]
    else:
        lines.append("no complete trial yet")
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if running:
        lines.append("running:")
        now = time.time()
        for t in running:
            lines.append(f"  #{t.number:<4d} {_params_text(t)}  (worker {t.user_attrs.get('worker', '?')}, "
                         f"last heartbeat {now - last_sign_of_life(t):.0f} s ago)")
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if failed:
        lines.append("failed:")
        for t in failed[-MAX_ROWS:]:
            retry = f" (retry of #{t.user_attrs[RETRY_OF]})" if RETRY_OF in t.user_attrs else ""
            reruns = [r for r in trials if r.user_attrs.get(RETRY_OF) == t.user_attrs.get(RETRY_OF, t.number)
                      and r.number > t.number]
            if reruns and t.user_attrs.get(FAIL_KIND) in ("stale", "interrupted"):
                verb = "queued as" if reruns[0].state == TrialState.WAITING else "rerun as"
                retry += f" → {verb} #{reruns[0].number}"
            lines.append(f"  #{t.number:<4d} [{t.user_attrs.get(FAIL_KIND, 'error')}] "
                         f"{t.user_attrs.get(FAIL_REASON, '(no reason recorded)')}{retry}")
        if len(failed) > MAX_ROWS:
            lines.append(f"  ... {len(failed) - MAX_ROWS} earlier failures (action=export writes them all)")
    lines += worker_errors.status_lines(study)
    lines.append("parameter importances (fANOVA):")
    for metric, imp in importances(study, spec).items():
        if isinstance(imp, str):
            lines.append(f"  {metric}: {imp}")
        else:
            lines.append(f"  {metric}: " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# export


def trials_frame(study, spec: SweepSpec):
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name}
        for i, metric in enumerate(spec.metric_names):
            row[metric] = t.values[i] if t.values else None
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row.update({"datetime_start": t.datetime_start, "datetime_complete": t.datetime_complete,
                    "duration_s": t.duration.total_seconds() if t.duration else None,
                    "last_step": t.last_step})
        row.update({f"user_attrs.{k}": v for k, v in t.user_attrs.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def export(study, spec: SweepSpec, out_dir: Path) -> list[Path]:
    """Write trials.csv, plots (PNG) and index.html into `out_dir`; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    frame = trials_frame(study, spec)
    csv = out_dir / "trials.csv"
    frame.to_csv(csv, index=False)
    written.append(csv)

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots: list[tuple[str, Path]] = []

    def save(ax_or_axes, name: str, title: str, height: float = 5.0) -> None:
        ax = ax_or_axes.flat[0] if hasattr(ax_or_axes, "flat") else ax_or_axes
        fig = ax.figure
        fig.set_size_inches(8, height)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        plots.append((title, path))
        written.append(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's matplotlib plots are flagged experimental
        if complete:
            if spec.multi_objective:
                save(ovm.plot_pareto_front(study, target_names=spec.metric_names), "pareto.png",
                     "Pareto front (" + " vs ".join(spec.metric_names) + ")")
            else:
                save(ovm.plot_optimization_history(study, target_name=spec.metric_names[0]), "history.png",
                     f"optimisation history ({spec.metric_names[0]})")
        for metric, imp in importances(study, spec).items():
            if isinstance(imp, str):
                continue
            fig, ax = plt.subplots()
            names = list(imp)[::-1]
            ax.barh(names, [imp[n] for n in names])
            ax.set_xlabel("importance (fANOVA, normalised)")
            ax.set_title(f"parameter importance for {metric}")
            save(ax, f"importance_{metric.replace('/', '_')}.png", f"parameter importance ({metric})",
                 height=1.6 + 0.45 * len(names))

    page = out_dir / "index.html"
    page.write_text(_html(study, spec, frame, plots), encoding="utf-8")
    written.append(page)
    return written


def _html(study, spec: SweepSpec, frame, plots) -> str:
    images = "\n".join(f"<h2>{html.escape(title)}</h2><img src='{html.escape(path.name)}' style='max-width:100%'>"
                       for title, path in plots)
    table = frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)
    status = html.escape(status_text(study, spec))
    return ("<!doctype html><meta charset='utf-8'>"
            f"<title>agebench study {html.escape(spec.study_name)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}pre{background:#f6f6f6;padding:1em}</style>"
            f"<h1>study {html.escape(spec.study_name)}</h1><pre>{status}</pre>{images}<h2>trials</h2>{table}")
