"""Model zoo: `create_model(name, tasks, input_size, **options)`; importing this package registers
every architecture family."""

from agebench.models import lmtcnn  # noqa: F401  (registers entry points)
from agebench.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
