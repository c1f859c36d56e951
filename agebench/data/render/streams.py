"""Randomness: one generator per (seed, stream, subject[, image]), so that every parameter, label and noise
field depends only on its own key (not on the batch size, n_subjects or the other streams)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import ndtri

from agebench.data.render.spec import SyntheticSpec

_F = np.float32

# Independent random streams, so e.g. changing label_noise never changes a single pixel.
SUBJECT_STREAM, IMAGE_STREAM, LABEL_STREAM, NOISE_STREAM = 0, 1, 2, 3
# Uniforms drawn per subject / per image. Fixed widths (with headroom) keep every parameter's
# column stable when parameters are added at the end.
SUBJECT_DRAWS, IMAGE_DRAWS, LABEL_DRAWS = 40, 40, 4


def image_keys(spec: SyntheticSpec) -> list[tuple[int, int]]:
    return [(s, j) for s in range(spec.n_subjects) for j in range(spec.images_per_subject)]


def generator(seed: int, stream: int, key: Sequence[int]) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, *key))))


def stream_uniforms(seed: int, stream: int, keys: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """(len(keys), width) uniforms; row r depends only on (seed, stream, keys[r])."""
    out = np.empty((len(keys), width))
    for row, key in enumerate(keys):
        out[row] = generator(seed, stream, key).random(width)
    return out


def noise_fields(seed: int, keys: Sequence[Sequence[int]], size: int) -> np.ndarray:
    """Per image, two standard-normal fields: [0] texture (hair, skin, background), [1] sensor noise."""
    out = np.empty((len(keys), 2, size, size), dtype=_F)
    for row, key in enumerate(keys):
        out[row] = generator(seed, NOISE_STREAM, key).standard_normal((2, size, size), dtype=_F)
    return out


class Draws:
    """Hands out the columns of a per-row uniform matrix one parameter at a time."""

    def __init__(self, uniforms: np.ndarray) -> None:
        self._u = uniforms
        self._next = 0

    def uniform(self, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        if self._next >= self._u.shape[1]:
            raise RuntimeError("out of pre-drawn uniforms: raise the draw width")
        column = self._u[:, self._next]
        self._next += 1
        return low + (high - low) * column

    def normal(self, mean: float | np.ndarray = 0.0, std: float | np.ndarray = 1.0) -> np.ndarray:
        return mean + std * ndtri(np.clip(self.uniform(), 1e-9, 1 - 1e-9))

    def signed(self, scale: float = 1.0) -> np.ndarray:
        return self.uniform(-scale, scale)

    def choice(self, probs: np.ndarray) -> np.ndarray:
        """Index drawn from probs (k,) or per-row probs (n, k)."""
        cumulative = np.cumsum(probs, axis=-1)[..., :-1]
        return np.sum(self.uniform()[:, None] >= cumulative, axis=-1)
