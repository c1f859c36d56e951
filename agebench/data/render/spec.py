"""What the renderer draws: :class:`SyntheticSpec` (plain values, straight from a config), the race classes
and the renderer version that keys the image cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RACE_NAMES", "RENDERER_VERSION", "Params", "SyntheticSpec"]

# Bump whenever the same spec renders different pixels or labels: it is part of the image cache's key.
RENDERER_VERSION = 3

RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")

Params = dict[str, np.ndarray]  # one array per parameter, one row per subject or image


@dataclass(frozen=True)
class SyntheticSpec:
    """What to render. All fields are plain values so the spec can come straight from a config."""

    n_subjects: int = 600
    images_per_subject: int = 4  # several images per subject at nearby ages
    image_size: int = 64  # square, rendered directly at this size (H=W)
    age_range: tuple[float, float] = (0.0, 80.0)
    age_spread: float = 3.0  # years: a subject's images span about ± this around its base age
    label_noise: float = 0.0  # P(stored gender/race replaced by another class); age jitter std = 10·p years
    gender_specific_aging: float = 0.0  # 0..1 task coupling: share of the adult age signal readable only with gender
    nuisance: float = 1.0  # 0..1 scales pose/scale/lighting/background/blur/occlusion variation
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.n_subjects < 1 or self.images_per_subject < 1:
            problems.append("n_subjects and images_per_subject must be >= 1")
        if self.image_size < 8:
            problems.append("image_size must be >= 8 pixels")
        if len(self.age_range) != 2 or not self.age_range[0] < self.age_range[1]:
            problems.append("age_range must be (low, high) with low < high")
        if self.age_spread < 0:
            problems.append("age_spread must be >= 0")
        for name in ("label_noise", "gender_specific_aging", "nuisance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1]")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if problems:
            raise ValueError("invalid SyntheticSpec: " + "; ".join(problems))

    @property
    def n_images(self) -> int:
        return self.n_subjects * self.images_per_subject
