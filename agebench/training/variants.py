"""An experiment's `variants` (named override lists, e.g. single-task age vs age+gender): each composed on top
of the command line's overrides and run as its own experiment in `output_dir/<variant>/`, then the
recipe's closing report or the summary table.

`variant_jobs: N` runs up to N variants at once, each in its own process (e.g. the quickstart's two
task-sets side by side, one thread each, on a 2-core machine). A child composes exactly the config a serial
run composes (same overrides, same `variant`), so its config hash, resume and numbers are those of a serial
run; the dataset is loaded (rendered, decoded, cached) once, by the parent, before any child starts. A stop
signal reaches every child, each stops at its safe point, and the command exits with the first non-zero
status once every child has ended: no finished fold is lost, and a rerun resumes the rest.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agebench.config.compose import compose_config, hydra_task_overrides
from agebench.config.recipe_models import check_variant_models
from agebench.errors import UserError
from agebench.results.store import SUMMARY_FILE
from agebench.training import experiment  # run_experiment looked up at call time: tests replace it
from agebench.training.summary_table import format_summary_table


def run_variants(cfg: DictConfig, output_dir: str, base_overrides: list[str] | None = None) -> dict:
    """Run each named variant of `cfg` (its overrides on top of the command line's) in its own dir."""
    base = hydra_task_overrides() if base_overrides is None else list(base_overrides)
    base = [o for o in base if not o.startswith(("output_dir=", "variants", "variant_jobs="))]
    check_variant_models(cfg.experiment_name, base, cfg.variants)  # a variant's model= would drop the user's
    jobs = [(str(name), base + list(overrides) + [f"output_dir={Path(output_dir) / name}", "variants=null"],
             str(Path(output_dir) / name)) for name, overrides in cfg.variants.items()]
    workers = int(cfg.get("variant_jobs") or 1)
    if workers < 1:
        raise UserError(f"variant_jobs={workers} must be >= 1 (the number of variants trained at once)")
    if workers > 1 and len(jobs) > 1:
        summaries = _run_side_by_side(cfg, jobs, workers)
    else:
        summaries = {name: run_variant(name, overrides, out) for name, overrides, out in jobs}
    if cfg.get("closing_report"):  # the report's own table, the paired answer, the dir (agebench/report/closing.py)
        from agebench.report.closing import closing_text

        print(closing_text(output_dir, str(cfg.closing_report)))
    elif cfg.get("summary_table"):
        print(format_summary_table(summaries))
    return summaries


def run_variant(name: str, overrides: list[str], output_dir: str) -> dict:
    """One variant as its own experiment: the same config whichever process runs it."""
    variant_cfg = compose_config(overrides)
    OmegaConf.set_struct(variant_cfg, False)
    variant_cfg.variant = name
    return experiment.run_experiment(variant_cfg, output_dir, print_table=False)


def _run_side_by_side(cfg: DictConfig, jobs: list[tuple[str, list[str], str]], workers: int) -> dict:
    from agebench.data.loading import load_dataset
    from agebench.runtime.process import cache_dir

    load_dataset(cfg.data, cache_dir(cfg))  # render/decode once into the cache: the children read it
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch/OpenMP state from the parent
    pending, running, codes = list(jobs), {}, {}
    stop = {"signum": None}

    def forward(signum, _frame):  # Ctrl-C reaches the children by itself; kill/scancel reach only the parent
        stop["signum"] = stop["signum"] or signum
        for process in running.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    try:
        while pending or running:
            while pending and len(running) < workers and stop["signum"] is None:
                name, overrides, out = pending.pop(0)
                process = context.Process(target=_child, args=(name, overrides, out), name=f"agebench-{name}")
                process.start()
                running[name] = process
            for name, process in list(running.items()):
                if not process.is_alive():
                    process.join()
                    codes[name] = process.exitcode
                    del running[name]
            if stop["signum"] is not None:
                pending.clear()  # no new variant after a stop; the running ones stop at their safe point
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop["signum"] is not None:
        raise SystemExit(128 + int(stop["signum"]))
    failed = [code for name, code in codes.items() if code != 0]
    if failed:  # each child said why on stderr; the finished folds of every variant are in its results.jsonl
        raise SystemExit(failed[0] if failed[0] and failed[0] > 0 else 1)
    return {name: json.loads((Path(out) / SUMMARY_FILE).read_text()) for name, _, out in jobs}


def _child(name: str, overrides: list[str], output_dir: str) -> None:
    """A spawned variant. run_experiment handles stop signals (safe point, exit 128 + signal); a user error is
    one line and exit 2, as in the parent."""
    from agebench.runtime import progress

    signal.signal(signal.SIGINT, signal.default_int_handler)  # spawn's child keeps no Python handler of the parent
    try:
        with progress.log_to(output_dir):
            run_variant(name, overrides, output_dir)
    except UserError as err:
        print(f"agebench: error: {err}", file=sys.stderr, flush=True)
        sys.exit(err.exit_code)
