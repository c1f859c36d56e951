"""A trained run on disk, as `agebench eval` and `agebench export` read it: which fold checkpoints a
`ckpt=` argument names, the run's own saved config, and its weights loaded tensors-only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from agebench.errors import UserError
from agebench.results.store import RESULTS_FILE, read_records


@dataclass
class TrainedFold:
    """One trained model of a run: its fold's run record and best checkpoint."""

    run_dir: Path
    record: dict
    checkpoint: Path

    @property
    def fold(self) -> int:
        return int(self.record["fold"])

    @property
    def repeat(self) -> int:
        return int(self.record.get("repeat") or 0)


def locate_checkpoints(ckpt: str, folds=None) -> tuple[Path, list[TrainedFold]]:
    """(run dir, trained folds) for `ckpt=`: a checkpoint file, a fold dir or a run dir."""
    path = Path(str(ckpt)).expanduser()
    if not path.exists():
        raise UserError(f"ckpt={ckpt} does not exist; point it at a run dir (with {RESULTS_FILE}), "
                        f"a fold_<k>/ dir or a fold's checkpoints/best.ckpt")
    wanted_repeat = 0
    if path.is_file():
        fold_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        run_dir, wanted_fold, wanted_file = fold_dir.parent, _fold_of(fold_dir), path.resolve()
        if run_dir.name.startswith("repeat_") and (run_dir.parent / RESULTS_FILE).exists():  # protocol.repeats
            run_dir, wanted_repeat = run_dir.parent, _fold_of(run_dir)
    elif (path / RESULTS_FILE).exists():
        run_dir, wanted_fold, wanted_file = path, None, None
    elif path.name.startswith("fold_") and (path.parent / RESULTS_FILE).exists():
        run_dir, wanted_fold, wanted_file = path.parent, _fold_of(path), None
    elif path.name.startswith("fold_") and path.parent.name.startswith("repeat_") \
            and (path.parent.parent / RESULTS_FILE).exists():
        run_dir, wanted_fold, wanted_file, wanted_repeat = path.parent.parent, _fold_of(path), None, _fold_of(path.parent)
    elif (path / "config.yaml").exists() or (path.name.startswith("fold_") and (path.parent / "config.yaml").exists()):
        run = path if (path / "config.yaml").exists() else path.parent
        raise UserError(f"ckpt={ckpt} is an agebench run with no finished fold yet (no {RESULTS_FILE} in {run}: its "
                        f"first fold is still training, or was stopped); wait for it, or rerun `agebench train` with "
                        f"output_dir={run} to finish it")
    else:
        inner = sorted(str(p.parent) for p in path.glob(f"*/{RESULTS_FILE}"))
        hint = f" (it holds runs: {', '.join(inner[:4])})" if inner else ""
        raise UserError(f"ckpt={ckpt} is neither a checkpoint file nor a run dir with {RESULTS_FILE}{hint}; "
                        f"point ckpt= at one run")
    records = [r for r in read_records(run_dir / RESULTS_FILE) if r.get("status") == "ok" and r.get("kind") != "eval"]
    if wanted_fold is not None:
        records = [r for r in records if int(r["fold"]) == wanted_fold and int(r.get("repeat") or 0) == wanted_repeat]
    if folds is not None:
        records = [r for r in records if int(r["fold"]) in {int(f) for f in folds}]
    if not records:
        raise UserError(f"{run_dir / RESULTS_FILE} holds no finished fold"
                        + (f" {wanted_fold}" if wanted_fold is not None else "")
                        + (f" among eval.folds={list(folds)}" if folds is not None else "")
                        + "; evaluate a run whose folds finished (status ok)")
    found = []
    for record in sorted(records, key=lambda r: (int(r.get("repeat") or 0), int(r["fold"]))):
        file = wanted_file or (run_dir / str(record.get("checkpoint") or f"fold_{record['fold']}/checkpoints/best.ckpt"))
        if not Path(file).exists():
            raise UserError(f"fold {record['fold']}'s checkpoint {file} is missing; rerun `agebench train` with "
                            f"output_dir={run_dir} to recreate it, or evaluate another fold (eval.folds=...)")
        found.append(TrainedFold(run_dir, record, Path(file)))
    return run_dir, found


def _fold_of(fold_dir: Path) -> int:
    try:
        return int(fold_dir.name.split("_", 1)[1])
    except (IndexError, ValueError):
        raise UserError(f"{fold_dir} is not a fold dir (fold_<k>/, repeat_<r>/) of an agebench run; point ckpt= at "
                        f"<run>/fold_<k>/checkpoints/best.ckpt or at the run dir") from None


def run_config(run_dir: Path, record: dict) -> DictConfig:
    """The run's own resolved config: `<run>/config.yaml`, else the copy inside its run record.

    Trusted as data only: `agebench train` writes it resolved, so an interpolation in it (`${oc.env:…}`, a
    custom resolver) was planted by someone who could write the run dir, and resolving it would read the
    evaluating user's environment into evals.jsonl. Such a config is refused in one line, before anything reads it."""
    saved = run_dir / "config.yaml"
    source = saved if saved.exists() else run_dir / "results.jsonl"
    try:
        cfg = OmegaConf.load(saved) if saved.exists() else OmegaConf.create(record.get("config") or {})
    except Exception as err:  # not YAML, not a mapping: one line, naming the file
        raise UserError(f"{source} is not a readable run config ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); rerun `agebench train` for this run dir") from None
    planted = _interpolations(OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else {})
    if planted:
        key, value = planted[0]
        raise UserError(f"{source} holds an interpolation at {key} ({value!r}); agebench writes run configs "
                        f"resolved, so this one was edited: it is refused rather than resolved (it could read your "
                        f"environment). Restore the file or rerun `agebench train`")
    if not isinstance(cfg, DictConfig) or "model" not in cfg or "tasks" not in cfg or "data" not in cfg:
        raise UserError(f"{run_dir} has no usable config.yaml (and its run record no config); it was not "
                        f"written by `agebench train`")
    return cfg


def _interpolations(node, path: str = "") -> list[tuple[str, str]]:
    """(dotted key, value) of every string holding an OmegaConf interpolation `${…}`."""
    if isinstance(node, dict):
        return [hit for k, v in node.items() for hit in _interpolations(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [hit for i, v in enumerate(node) for hit in _interpolations(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) and "${" in node else []


def checkpoint_weights(checkpoint: Path) -> dict:
    """The `model.*` weights of an agebench checkpoint (`weights_only=True`: tensors only, nothing runs), keys
    as the LightningModule names them; an unreadable, empty or foreign file is one line naming it."""
    import torch

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's own message ends in advice to set weights_only=False: never that
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise UserError(f"cannot read checkpoint {checkpoint} ({type(err).__name__}{': ' + first if first else ''}); "
                        f"it is not an agebench best.ckpt/last.ckpt — point ckpt= at a run dir or retrain the fold") from None
    weights = state.get("state_dict", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not any(str(k).startswith("model.") for k in weights):
        raise UserError(f"checkpoint {checkpoint} holds no model weights ({type(state).__name__}); it is not an "
                        f"agebench best.ckpt/last.ckpt")
    # a compiled model (trainer.compile) saves its weights under `model._orig_mod.`
    return {str(k).replace("model._orig_mod.", "model.", 1): v for k, v in weights.items()}


def fit_weights(target, weights: dict, checkpoint: Path) -> None:
    """`weights` into `target` (a module or a bare network), a shape or name mismatch as one line."""
    try:
        missing, unexpected = target.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # size mismatch: the run config builds other layers than the checkpoint holds
        first = (str(err).strip().splitlines() or [""])[-1].strip()[:200]
        raise UserError(f"checkpoint {checkpoint} does not fit the model its run config builds ({first}); was "
                        f"config.yaml edited, or the checkpoint copied from another run?") from None
    if missing or unexpected:
        raise UserError(f"checkpoint {checkpoint} does not fit the model its run config builds "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]}); was config.yaml edited?")


def load_weights(module, checkpoint: Path) -> None:
    """The checkpoint's weights into the LightningModule."""
    fit_weights(module, checkpoint_weights(checkpoint), checkpoint)
