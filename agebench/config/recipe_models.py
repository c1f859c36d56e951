"""A recipe's variants against the user's model choice.

Model-specific keys live in the model's own config (conf/model/<option>.yaml), so
`experiment=<recipe> model=<other>` composes with the other model's defaults. A recipe whose variants
name their model themselves (seed 000's LMTCNN-vs-Levi–Hassner rows, seed 003's conv-layer ablation)
compares architectures: Hydra would let the variant's `model=` win and silently drop the user's, so that
case ends in one line saying so instead.
"""

from __future__ import annotations

from agebench.errors import UserError


def model_choice(overrides) -> str | None:
    """The last `model=<option>` among Hydra overrides (`+`/`++` forms included), or None."""
    chosen = None
    for override in overrides:
        key, sep, value = str(override).lstrip("+").partition("=")
        if sep and key.strip() == "model":
            chosen = value.strip()
    return chosen


def check_variant_models(experiment: str, user_overrides, variants) -> None:
    """UserError when the user picks a model and some variant picks another one."""
    user = model_choice(user_overrides)
    if user is None:
        return
    clash = {str(name): m for name, overrides in variants.items() if (m := model_choice(overrides)) not in (None, user)}
    if clash:
        shown = ", ".join(f"{name}: model={m}" for name, m in list(clash.items())[:3]) + (" …" if len(clash) > 3 else "")
        raise UserError(f"experiment={experiment} compares architectures: its variants choose their own model ({shown}), "
                        f"which would replace model={user}; drop model={user} to run the recipe as published, "
                        f"or add variants=null to train model={user} alone with the recipe's other settings")
