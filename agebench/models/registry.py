"""Model registry, timm-style: each architecture family registers small named entry points.

An entry point takes the heads to build (`heads.HeadSpec`s: `create_model` makes them from the caller's
tasks), the input resolution and the family's keyword options (the
`model` config group minus `name`), and returns an `nn.Module` whose forward maps a float image batch
(N, 3, H, W) to a dict of raw outputs keyed by task name (see `heads.MultiTaskNet`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from agebench.errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, tasks, input_size: int, **kwargs) -> nn.Module:
    """Model `name` with one head per entry of `tasks`: `heads.HeadSpec`s, or objects with `head_spec()`."""
    from agebench.models.heads import head_specs

    if name not in _MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(list_models())} (conf/model/)")
    try:
        return _MODELS[name](tasks=head_specs(tasks), input_size=int(input_size), **kwargs)
    except TypeError as err:  # an option the family does not take
        raise UserError(f"model {name!r}: {err}; see conf/model/{name}.yaml for its options") from None
    except RuntimeError as err:  # the dummy forward that sizes the FC layers found the input too small
        if "too small" in str(err) or "Kernel size can't be greater" in str(err):
            raise UserError(f"data.image_size={input_size} is too small for model {name!r} "
                            f"(its feature map shrinks to nothing); use a larger data.image_size") from None
        raise
