"""Model zoo: `create_model(name, tasks, input_size, **options)`; importing this package registers
every architecture family (one file each):

| entry point(s)                          | file                 | seed |
|-----------------------------------------|----------------------|------|
| levi_hassner, levi_hassner_reduced      | levi_hassner.py      | 000/001/003 baseline, 001 Table 1 |
| lmtcnn, lmtcnn_1_1, lmtcnn_2_1          | lmtcnn.py            | 000 |
| lightweight_joint                       | lightweight_joint.py | 003 |
| multibranch                             | multibranch.py       | 004 |
| timm (any timm backbone)                | timm_backbone.py     | 001 (Xception), 002 (EfficientNet) |

Beside the families: `registry` (named entry points), `heads` (the `HeadSpec` a model sees for each task,
and the shared multi-task net), `layers` (LRN, clamped pooling) and `profile` (params, GMACs, size and
latency of a model: every run record's cost fields).

Every model maps an (N, 3, H, W) float batch to a dict of raw outputs keyed by task name; a model may
add auxiliary outputs under "<task>:<tag>" and weights for them in `model.aux_loss_weights`.
"""

from agebench.models import (  # noqa: F401  (registers entry points)
    levi_hassner,
    lightweight_joint,
    lmtcnn,
    multibranch,
    timm_backbone,
)
from agebench.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
