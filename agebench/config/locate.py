"""`_target_` paths of the config (optimizers, schedulers, loggers) to Python objects, with a user's typo
as one line. hydra.utils.get_method would do, but it logs an ERROR with a multi-line message first."""

from __future__ import annotations

import importlib

from agebench.errors import UserError
from agebench.results.run_identity import current_target


def locate(path: str, where: str, example: str):
    """The object at dotted `path` (a module, then attributes); `where` names the config entry and
    `example` shows a valid path in the error. An address from before the package's layers
    (`agebench.optim.cosine_annealing`) resolves to where it lives now."""
    parts = current_target(path).split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        return obj
    raise UserError(f"_target_ {path!r} of {where} cannot be imported; give the full import path "
                    f"(module.Class, e.g. {example})")
