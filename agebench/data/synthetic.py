"""Procedurally rendered synthetic faces: agebench's embedded default dataset.

Every image is drawn with numpy from a handful of per-subject and per-image parameters, so the
whole suite runs on a fresh machine with no download, and the same :class:`SyntheticSpec` always
gives byte-identical images and labels.

What a model can learn from the pixels (and what gets in its way):

* **identity** (persistent per subject): head width/height, eye spacing and size, nose and mouth
  width, lip thickness, skin tone, hair colour, hair style and length, hairline, brow thickness,
  beard style, greying onset. A subject's images are at nearby ages (``± age_spread``), so a
  model that has seen the subject in training recognises it in test: subject leakage inflates
  accuracy, as on real face datasets.
* **age**: children (< 16 y) have a rounder face, a big cranium (eyes low on the face, a tall
  forehead), big eyes, a small nose/mouth, rosy cheeks and sparse baby hair; adults gain wrinkle
  lines (forehead, crow's feet, nasolabial folds, eye bags) and rough skin texture from about 28 y,
  and grey hair from a subject-specific onset around 42 y; men grow a beard from about 14 y.
* **gender**: hair length (most women long, few men), beard (most adult men; none for women or
  boys), thicker brows and a slightly wider head for men, fuller and sometimes painted lips for
  women. Children's gender is mostly carried by hair, so it is genuinely harder.
* **race** (UTKFace's five classes and rough proportions): skin tone (overlapping distributions,
  further confounded by lighting), hair colour and curl, eye opening, nose width, lip thickness.
* **adult flush** (from about 20 y): a rose tint over both cheeks that deepens with adult age.
* **gender-specific aging** (``gender_specific_aging`` g, the task coupling): where the adult age is
  written. The gender-neutral adult cues (wrinkles, eye bags, skin roughness, flush, greying, men's
  receding hairline) keep ``1 - g`` of their strength; instead, with weight g, adults age *along their
  gender cues*: men's beards fill in and their brows thicken from 18 to 75 y (a young man at g = 1 is
  clean-shaven), women's long hair shortens, their lips thin and their lipstick fades. At g = 0 the
  gender cues are constant over adult life; at g = 1 they are the only adult age cues, and the same
  amount of beard or hair means a different age for a man and for a woman. Children's cues (face
  geometry, eye size, sparse hair, blush) never depend on g.

  Why this should move the multi-task gain (sweeps/coupling.yaml, at a small fixed data budget): a
  shared trunk learns the features its labels pay for. The gender labels pay for beard, brow,
  hair-length and lip detectors. At g = 0 those features say nothing about adult age, so gender
  supervision adds nothing age can use (age+gender ≈ age alone). At g = 1 they are exactly the features
  that read adult age, and the gender head trains them on every image with a clean signal, while the
  age loss alone must find them through eight noisy age bins.

  Measured (issue 14, 400 subjects × 4 images at 32 px, 12 epochs, 5 folds, data.seed 0 / 1): Δ age
  top-1 at g = 0 is -0.12 (95% CI -2.50..2.27) / -1.87 (-6.31..2.56) points, at g = 0.5 -1.91 / +1.25
  (CIs hold 0), at g = 1 +1.07 (0.04..2.10, paired t-test p = 0.045) / +0.06 (-2.17..2.30, p = 0.94).
  So the gain at g = 1 is small next to the fold-to-fold noise (significant on one seed of two); a
  larger effect needs a stronger coupling or more test faces per fold. ``data.age_label_fraction`` (agebench/data/label_budget.py: only that
  share of the training subjects keeps its age label, every image its gender) did not widen it in a
  3–4-fold trial at 0.5 (Δ at g = 1: -0.7 / -0.6), so the study leaves it at 1.
* **nuisance** (all scaled by ``nuisance``): in-plane rotation, shift, scale, yaw-like feature
  shift, global gain, lighting gradient, colour cast, random background colour and stripes,
  clothing colour, Gaussian blur, random occluding patches; a little sensor noise always.
* **label noise** (``label_noise`` p): each image's stored gender and race are replaced by a
  different class with probability p, and its stored age gets Gaussian jitter of 10·p years.

Determinism: each subject, image, label and noise field draws from its own
``Generator(PCG64(SeedSequence(seed, spawn_key=(stream, subject[, image]))))``, and rendering is
element-wise numpy (no BLAS, no threads), so the output depends neither on the batch size nor on
``n_subjects`` (subject i renders the same in a spec with more subjects). Byte-identity is
promised for one numpy build on one CPU family; float32 transcendental kernels may round
differently elsewhere.

Measuring generation time (not a unit test; the target is < 20 s for 10,000 images at 64 px
on two cores)::

    python -c "import time; from agebench.data.synthetic import SyntheticSpec, generate; \\
    t = time.perf_counter(); x, y = generate(SyntheticSpec(n_subjects=2500, images_per_subject=4)); \\
    print(x.shape, f'{time.perf_counter() - t:.1f} s')"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

__all__ = ["RACE_NAMES", "RENDERER_VERSION", "SyntheticSpec", "generate", "generate_labels"]

# Bump whenever the same spec renders different pixels or labels: it is part of the image cache's key.
RENDERER_VERSION = 2

RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")

Params = dict[str, np.ndarray]
_F = np.float32

# Independent random streams, so e.g. changing label_noise never changes a single pixel.
_SUBJECT_STREAM, _IMAGE_STREAM, _LABEL_STREAM, _NOISE_STREAM = 0, 1, 2, 3
# Uniforms drawn per subject / per image. Fixed widths (with headroom) keep every parameter's
# column stable when parameters are added at the end.
_SUBJECT_DRAWS, _IMAGE_DRAWS, _LABEL_DRAWS = 40, 40, 4
_BATCH = 64  # images rendered together: big enough to amortise numpy overhead, small for cache

# UTKFace's approximate race proportions, so the class balance resembles the real benchmark.
_RACE_PRIORS = np.array([0.42, 0.19, 0.15, 0.17, 0.07])
# Mean skin reflectance (RGB, 0..1) per race. The per-subject spread and lighting make them overlap.
_SKIN_MEANS = np.array(
    [[0.92, 0.76, 0.66], [0.47, 0.32, 0.24], [0.90, 0.76, 0.60], [0.70, 0.50, 0.37], [0.79, 0.60, 0.47]]
)
# Feature shapes that differ by race, so tone is not the only race cue.
_RACE_EYE_OPEN = np.array([1.0, 1.0, 0.68, 1.0, 0.9])
_RACE_NOSE_WIDTH = np.array([1.0, 1.35, 1.05, 1.1, 1.15])
_RACE_LIPS = np.array([1.0, 1.35, 1.0, 1.05, 1.15])
_RACE_CURL = np.array([0.05, 0.85, 0.0, 0.1, 0.3])
# Hair palette: black, dark brown, brown, blond, red; and its probabilities per race.
_HAIR_PALETTE = np.array(
    [[0.07, 0.06, 0.06], [0.20, 0.13, 0.08], [0.40, 0.26, 0.15], [0.78, 0.63, 0.38], [0.58, 0.24, 0.11]]
)
_HAIR_PRIORS = np.array(
    [
        [0.15, 0.30, 0.25, 0.20, 0.10],
        [0.85, 0.15, 0.00, 0.00, 0.00],
        [0.85, 0.15, 0.00, 0.00, 0.00],
        [0.80, 0.20, 0.00, 0.00, 0.00],
        [0.45, 0.35, 0.15, 0.04, 0.01],
    ]
)
# Iris colours: dark brown, brown, blue, green; and their probabilities per race.
_IRIS_PALETTE = np.array([[0.12, 0.07, 0.05], [0.30, 0.18, 0.09], [0.25, 0.40, 0.60], [0.30, 0.42, 0.28]])
_IRIS_PRIORS = np.array(
    [[0.2, 0.3, 0.35, 0.15], [0.9, 0.1, 0, 0], [0.9, 0.1, 0, 0], [0.85, 0.15, 0, 0], [0.6, 0.3, 0.05, 0.05]]
)
_SILVER = np.array([0.80, 0.80, 0.82])
_FLUSH_RGB = np.array([0.85, 0.22, 0.30])  # the adult flush cue's colour (a saturated rose, on any skin tone)
_FLUSH_ALPHA = 0.8  # its opacity at full strength
_DRIFT = 1.0  # at coupling 1 a 75-year-old man's brows are (1 + this)× as thick as at 18 y; women's hair shortens
_SHARED_FADE = 1.0  # at coupling 1 the gender-neutral adult cues keep 1 - this of their strength
_SCLERA = np.array([0.93, 0.92, 0.88])
_LIPSTICK = np.array([0.72, 0.16, 0.22])
_BEARD_STYLES = np.array([0.30, 0.25, 0.30, 0.15])  # men: clean-shaven, stubble, full, moustache+goatee
_FACE_CENTRE_Y = -0.06  # the face sits a little above the image centre, leaving room for shoulders
_MAX_BLUR_PX_AT_64 = 1.45  # largest Gaussian blur sigma (pixels at 64 px; scales with image size)


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


def generate(spec: SyntheticSpec, workers: int | None = 1) -> tuple[np.ndarray, pd.DataFrame]:
    """images: uint8 array (N, H, W, 3) C-contiguous; labels: DataFrame with N rows and columns
    subject (str, e.g. 's00042'), age (float years), gender (int 0 male / 1 female), race (int 0..4:
    UTKFace's White, Black, Asian, Indian, Others), image (str, a stable id like 's00042_2').
    Rows are ordered subject by subject. `workers` threads render batches at once (None: one per
    core, at most 8: each holds ~0.45 GB of float32 canvases at 256 px); the images are the same
    whatever the count. 256-px faces: ~0.05 s each on one core, 1.7× faster on two."""
    return _generate(spec, batch_size=_BATCH, workers=workers)


def generate_labels(spec: SyntheticSpec) -> pd.DataFrame:
    """The labels :func:`generate` returns for this spec, without rendering a pixel (milliseconds)."""
    return _labels(spec, _draw_images(spec, _draw_subjects(spec)), _image_keys(spec))


def _generate(spec: SyntheticSpec, batch_size: int, workers: int | None = 1) -> tuple[np.ndarray, pd.DataFrame]:
    from agebench.progress import counted_work  # a bar with counts on a terminal, start/end lines otherwise

    subjects = _draw_subjects(spec)
    params = _draw_images(spec, subjects)
    keys = _image_keys(spec)
    size = spec.image_size
    images = np.empty((spec.n_images, size, size, 3), dtype=np.uint8)

    def render(start: int) -> None:  # a batch depends only on its own parameters and noise keys
        stop = min(start + batch_size, spec.n_images)
        batch = {name: value[start:stop] for name, value in params.items()}
        noise = _noise_fields(spec.seed, keys[start:stop], size)
        images[start:stop] = _render_batch(batch, noise, size)
        advance(stop - start)

    starts = range(0, spec.n_images, batch_size)
    workers = max(1, min(int(workers or min(8, _available_cores())), len(starts)))
    with counted_work(spec.n_images, "rendering", "rendered", f"synthetic faces ({size}×{size})") as advance:
        if workers == 1:
            for start in starts:
                render(start)
        else:  # numpy releases the GIL inside its element-wise loops over whole (B, S, S) arrays: threads scale
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers, thread_name_prefix="agebench-render") as pool:
                list(pool.map(render, starts))
    return images, _labels(spec, params, keys)


def _available_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------
# Randomness: one generator per subject / image / stream.


def _image_keys(spec: SyntheticSpec) -> list[tuple[int, int]]:
    return [(s, j) for s in range(spec.n_subjects) for j in range(spec.images_per_subject)]


def _generator(seed: int, stream: int, key: Sequence[int]) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, *key))))


def _stream_uniforms(seed: int, stream: int, keys: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """(len(keys), width) uniforms; row r depends only on (seed, stream, keys[r])."""
    out = np.empty((len(keys), width))
    for row, key in enumerate(keys):
        out[row] = _generator(seed, stream, key).random(width)
    return out


def _noise_fields(seed: int, keys: Sequence[Sequence[int]], size: int) -> np.ndarray:
    """Per image, two standard-normal fields: [0] texture (hair, skin, background), [1] sensor noise."""
    out = np.empty((len(keys), 2, size, size), dtype=_F)
    for row, key in enumerate(keys):
        out[row] = _generator(seed, _NOISE_STREAM, key).standard_normal((2, size, size), dtype=_F)
    return out


class _Draws:
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


# ----------------------------------------------------------------------------------------------
# Parameters: persistent identity per subject, then age-driven appearance and nuisance per image.


def _draw_subjects(spec: SyntheticSpec) -> Params:
    n = spec.n_subjects
    d = _Draws(_stream_uniforms(spec.seed, _SUBJECT_STREAM, [(s,) for s in range(n)], _SUBJECT_DRAWS))
    gender = (d.uniform() < 0.5).astype(np.int64)
    male = gender == 0
    race = d.choice(_RACE_PRIORS)
    low, high = spec.age_range
    p: Params = {"gender": gender, "race": race, "base_age": d.uniform(low, high)}
    p["head_w"] = d.normal(0.45, 0.025) * np.where(male, 1.04, 1.0)
    p["head_h"] = d.normal(0.60, 0.03)
    p["eye_x"] = d.normal(0.175, 0.012)
    p["eye_size"] = d.normal(1.0, 0.08)
    p["eye_open"] = d.normal(1.0, 0.08) * _RACE_EYE_OPEN[race]
    p["nose_w"] = d.normal(0.055, 0.008) * _RACE_NOSE_WIDTH[race]
    p["mouth_w"] = d.normal(0.12, 0.012)
    p["lips"] = d.normal(1.0, 0.12) * _RACE_LIPS[race]
    lightness, warmth = d.normal(1.0, 0.08), d.normal(0.0, 0.025)
    p["skin"] = np.clip(_SKIN_MEANS[race] * lightness[:, None] + warmth[:, None] * [1.0, 0.3, -0.6], 0.05, 1)
    hair_index = d.choice(_HAIR_PRIORS[race])
    p["hair"] = np.clip(_HAIR_PALETTE[hair_index] * d.normal(1.0, 0.12)[:, None], 0.02, 1)
    p["long_hair"] = (d.uniform() < np.where(male, 0.1, 0.8)).astype(float)
    p["hair_len"] = d.uniform(0.35, 1.0)
    p["curl"] = np.clip(_RACE_CURL[race] + d.normal(0, 0.08), 0, 1)
    bangs = ~male & (d.uniform() < 0.25)
    p["hair_line"] = d.normal(-0.31, 0.03) + np.where(bangs, 0.14, 0.0)
    p["hair_volume"] = 0.04 + 0.08 * p["curl"] + d.uniform(0, 0.04)
    p["brow_h"] = d.normal(0.021, 0.003) * np.where(male, 1.45, 1.0) * np.where(race == 3, 1.15, 1.0)
    p["beard_style"] = np.where(male, d.choice(_BEARD_STYLES), 0)
    p["grey_onset"] = d.normal(42.0, 7.0)
    p["recession_rate"] = d.uniform(0.3, 1.0) * male
    p["wrinkle_rate"] = np.clip(d.normal(1.0, 0.2), 0.5, 1.6)
    p["lipstick"] = (~male & (d.uniform() < 0.45)).astype(float)
    p["iris"] = _IRIS_PALETTE[d.choice(_IRIS_PRIORS[race])]
    return p


def _draw_images(spec: SyntheticSpec, subjects: Params) -> Params:
    """Per-image parameters: subject identity, this image's age and the look it implies, nuisance."""
    keys = _image_keys(spec)
    d = _Draws(_stream_uniforms(spec.seed, _IMAGE_STREAM, keys, _IMAGE_DRAWS))
    owner = np.repeat(np.arange(spec.n_subjects), spec.images_per_subject)
    p = {name: value[owner] for name, value in subjects.items()}
    low, high = spec.age_range
    p["age"] = _reflect_into(p["base_age"] + d.signed(spec.age_spread), low, high)
    p.update(_appearance(p, spec.gender_specific_aging, d.uniform()))
    p.update(_nuisance(d, spec.nuisance, spec.image_size))
    return p


def _reflect_into(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Mirror values at the range ends: stays within the spread of the base age, no spike at the ends."""
    values = np.where(values < low, 2 * low - values, values)
    values = np.where(values > high, 2 * high - values, values)
    return np.clip(values, low, high)


def _ramp(values: np.ndarray, start: float, stop: float) -> np.ndarray:
    return np.clip((values - start) / (stop - start), 0.0, 1.0)


def _appearance(p: Params, gender_specific: float, expression: np.ndarray) -> Params:
    """Face geometry and colours at this image's age."""
    age, male, female = p["age"], p["gender"] == 0, p["gender"] == 1
    child = _ramp(-age, -16.0, 0.0)  # 1 at birth, 0 from 16 y
    adult = np.clip((age - 28.0) / 45.0, 0.0, 1.15)  # wrinkle ramp
    # Coupling g (module docstring, "gender-specific aging"): the gender-neutral adult cues fade to
    # 1 - _SHARED_FADE·g of their strength, and the adult age moves into the gender cues themselves.
    shared = 1.0 - _SHARED_FADE * gender_specific
    greying = _ramp(age - p["grey_onset"], 0.0, 25.0) * shared
    recession = male * p["recession_rate"] * _ramp(age, 22.0, 62.0) * shared
    beard_grey = greying
    flush = _ramp(age, 20.0, 75.0) * shared
    drift = gender_specific * _ramp(age, 18.0, 75.0)  # 0 at g=0; at g=1 it runs from 0 at 18 y to 1 at 75 y
    manly = (1.0 - gender_specific) + drift  # men's beard and brow mass: constant at g=0, growing with age at g=1
    beard = male * _ramp(age, 14.0, 22.0) * manly
    style = p["beard_style"]

    q: Params = {}
    q["head_w"] = p["head_w"] * (1 + 0.06 * child)
    q["head_h"] = p["head_h"] * (1 - 0.10 * child)
    q["eye_y"] = -0.06 + 0.13 * child  # children: big cranium, eyes low on the face
    q["eye_x"] = p["eye_x"] * (1 + 0.05 * child)
    q["eye_rx"] = 0.072 * p["eye_size"] * (1 + 0.45 * child)
    q["eye_ry"] = 0.040 * p["eye_size"] * p["eye_open"] * (1 + 0.55 * child) * (1 - 0.12 * adult)
    q["brow_y"] = q["eye_y"] - q["eye_ry"] - 0.05
    q["brow_alpha"] = 0.9 - 0.45 * child
    q["brow_h"] = p["brow_h"] * np.where(male, 1.0 + _DRIFT * drift, 1.0)
    # women: long hair shortens, lips thin and lipstick fades with age (at g=1)
    q["hair_len"] = p["hair_len"] * np.where(female, 1.0 - 0.75 * _DRIFT * drift, 1.0)
    q["nose_y"] = q["eye_y"] + 0.20 * (1 - 0.35 * child)
    q["nose_w"] = p["nose_w"] * (1 - 0.25 * child)
    q["mouth_y"] = q["eye_y"] + 0.33 * (1 - 0.30 * child)
    q["mouth_w"] = p["mouth_w"] * (1 - 0.30 * child) * (1 + 0.15 * (expression - 0.5))
    q["mouth_h"] = 0.021 * p["lips"] * (1 - 0.3 * np.minimum(adult, 1)) * np.where(female, 1.2 - 0.5 * drift, 1.0)
    q["blush"] = 0.5 * child
    q["flush"] = _FLUSH_ALPHA * flush
    q["wrinkles"] = p["wrinkle_rate"] * adult * shared
    q["eye_bags"] = _ramp(age, 35.0, 75.0) * shared
    q["roughness"] = 0.025 + 0.07 * q["wrinkles"]
    q["recession"] = recession
    q["hair_alpha"] = 0.35 + 0.65 * _ramp(age, 0.0, 4.0)  # babies have sparse hair
    q["hair_rgb"] = _mix(p["hair"], _SILVER, greying)
    q["brow_rgb"] = _mix(p["hair"], _SILVER, 0.6 * greying) * 0.85
    q["beard_rgb"] = _mix(np.minimum(p["hair"], 0.35), _SILVER, beard_grey)
    q["beard_full"] = beard * np.select([style == 1, style == 2], [0.28, 0.85], 0.0)
    q["beard_moustache"] = beard * np.isin(style, (2, 3)) * 0.85
    lips = np.clip(p["skin"] * [1.0, 0.62, 0.62] - 0.04, 0, 1)
    q["lip_rgb"] = _mix(lips, _LIPSTICK, 0.85 * p["lipstick"] * _ramp(age, 14.0, 18.0) * (1.0 - drift))
    q["skin"] = np.clip(p["skin"] * (1 - 0.05 * adult[:, None]), 0, 1)
    return q


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    return a + (b - a) * (t[:, None] if t.ndim == 1 else t)


def _nuisance(d: _Draws, amount: float, size: int) -> Params:
    """Capture conditions, each scaled by the nuisance knob (0 gives a frontal, studio-like shot)."""
    q: Params = {}
    q["rotation"] = np.deg2rad(d.signed(15.0 * amount))
    q["shift_x"], q["shift_y"] = d.signed(0.09 * amount), d.signed(0.07 * amount)
    q["scale"] = 1.0 + d.signed(0.12 * amount)
    q["yaw"] = d.signed(0.06 * amount)
    q["gain"] = np.exp(d.normal(0.0, 0.22 * amount))
    q["gradient"], q["gradient_angle"] = d.uniform(0.0, 0.35 * amount), d.uniform(0, 2 * np.pi)
    q["cast"] = 1.0 + 0.05 * amount * np.stack([d.normal() for _ in range(3)], axis=1)
    q["bg_rgb"] = 0.5 + 0.8 * amount * (np.stack([d.uniform() for _ in range(3)], axis=1) - 0.5)
    q["bg2_rgb"] = 0.5 + 0.8 * amount * (np.stack([d.uniform() for _ in range(3)], axis=1) - 0.5)
    q["bg_freq"], q["bg_angle"] = d.uniform(2.0, 12.0), d.uniform(0, np.pi)
    q["bg_phase"], q["bg_stripes"] = d.uniform(0, 2 * np.pi), d.uniform(0, amount)
    q["clothes_rgb"] = np.stack([d.uniform(0.1, 0.9) for _ in range(3)], axis=1)
    q["blur_px"] = (0.35 + (_MAX_BLUR_PX_AT_64 - 0.35) * amount * d.uniform() ** 2) * size / 64
    q["noise_std"] = 0.012 + 0.025 * amount * d.uniform()
    q["occluded"] = (d.uniform() < 0.25 * amount).astype(float)
    q["occ_x"], q["occ_y"] = d.signed(0.7), d.signed(0.7)
    q["occ_w"], q["occ_h"] = d.uniform(0.15, 0.45), d.uniform(0.15, 0.45)
    q["occ_rgb"] = np.stack([d.uniform(0.05, 0.95) for _ in range(3)], axis=1)
    return q


def _labels(spec: SyntheticSpec, p: Params, keys: list[tuple[int, int]]) -> pd.DataFrame:
    """Stored labels: the true ones, with label_noise applied on its own random stream."""
    d = _Draws(_stream_uniforms(spec.seed, _LABEL_STREAM, keys, _LABEL_DRAWS))
    noise = spec.label_noise
    gender, race = p["gender"].copy(), p["race"].copy()
    flip_gender, flip_race = d.uniform() < noise, d.uniform() < noise
    other_race = (race + 1 + np.floor(d.uniform(0, 4)).astype(np.int64)) % 5  # any class but the true one
    gender[flip_gender] = 1 - gender[flip_gender]
    race[flip_race] = other_race[flip_race]
    low, high = spec.age_range
    age = np.clip(p["age"] + d.normal(0.0, 10.0 * noise), low, high)
    subject = [f"s{s:05d}" for s, _ in keys]
    return pd.DataFrame(
        {
            "subject": subject,
            "age": age.astype(np.float64),
            "gender": gender.astype(np.int64),
            "race": race.astype(np.int64),
            "image": [f"{name}_{j}" for name, (_, j) in zip(subject, keys, strict=True)],
        }
    )


# ----------------------------------------------------------------------------------------------
# Rendering: a batch of images at once, element-wise numpy over (B, S, S[, 3]) arrays.


def _render_batch(p: Params, noise: np.ndarray, size: int) -> np.ndarray:
    q = _as_broadcast(p)
    X, Y = _image_grid(size)
    x, y, px = _face_coords(X, Y, q, size)
    texture = noise[:, 0]
    canvas = _background(X, Y, q, texture)
    hair_rgb = _hair_colour(x, y, q, texture)
    face = _ellipse(x, y, 0.0, 0.0, q["head_w"], q["head_h"], px)
    _draw_body(canvas, x, y, px, q, hair_rgb)
    _draw_skin(canvas, x, y, px, face, q, texture)
    _draw_wrinkles(canvas, x, y, px, face, q)
    _draw_beard(canvas, x, y, px, face, q, texture)
    _draw_features(canvas, x, y, px, q)
    _draw_scalp_hair(canvas, x, y, px, face, q, hair_rgb)
    _draw_occluder(canvas, X, Y, q, size, texture)
    _apply_lighting(canvas, X, Y, q)
    canvas = _blur(canvas, p["blur_px"].astype(_F), _blur_radius(size))
    canvas += q["noise_std"][..., None] * noise[:, 1, :, :, None]
    return np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)


def _as_broadcast(p: Params) -> Params:
    """(B,) -> (B,1,1) and (B,3) -> (B,1,1,3) float32, ready to broadcast against pixel grids."""
    return {k: np.asarray(v, dtype=_F).reshape(v.shape[:1] + (1, 1) + v.shape[1:]) for k, v in p.items()}


def _image_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in [-1, 1]: X as (1,1,S) and Y as (1,S,1) (y points down)."""
    c = ((np.arange(size, dtype=_F) + 0.5) / size * 2 - 1).astype(_F)
    return c[None, None, :], c[None, :, None]


def _face_coords(X: np.ndarray, Y: np.ndarray, q: Params, size: int):
    """Face-frame coordinates (B,S,S) after this image's rotation, shift and scale, plus pixel size."""
    cos, sin, scale = np.cos(q["rotation"]), np.sin(q["rotation"]), q["scale"]
    dx, dy = X - q["shift_x"], Y - q["shift_y"] - _F(_FACE_CENTRE_Y)
    x = (cos * dx + sin * dy) / scale
    y = (cos * dy - sin * dx) / scale
    return x, y, _F(2.0 / size) / scale


def _ellipse(x, y, cx, cy, ax, ay, px) -> np.ndarray:
    """Anti-aliased ellipse coverage in [0, 1] (signed distance approximated along the short axis)."""
    u, v = (x - cx) / ax, (y - cy) / ay
    r = np.sqrt(u * u + v * v)
    return np.clip((1.0 - r) * (np.minimum(ax, ay) / px) + 0.5, 0.0, 1.0)


def _above(v, v0, px) -> np.ndarray:
    """Soft step: 1 where v < v0."""
    return np.clip((v0 - v) / px + 0.5, 0.0, 1.0)


def _band(v, low, high, px) -> np.ndarray:
    """Soft indicator of low < v < high."""
    return np.clip(np.minimum(v - low, high - v) / px + 0.5, 0.0, 1.0)


def _over(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-composite colour (B,1,1,3) or (B,S,S,3) over canvas, in place.

    Only the window where any image of the batch has coverage is touched: most layers (eyes, brows,
    mouth) cover a few percent of the pixels, and compositing is the bulk of the rendering time."""
    covered = np.any(alpha, axis=0)
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    if rows.size == 0:
        return
    window = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    if colour.ndim == 4 and colour.shape[1] > 1:
        colour = colour[window]
    view = canvas[window]
    view += alpha[window][..., None] * (colour - view)


def _background(X, Y, q: Params, texture: np.ndarray) -> np.ndarray:
    """Random colour, mixed with a second colour in stripes, plus grain."""
    t = X * np.cos(q["bg_angle"]) + Y * np.sin(q["bg_angle"])
    stripes = q["bg_stripes"] * (0.5 + 0.5 * np.sin(q["bg_freq"] * t + q["bg_phase"]))
    canvas = q["bg_rgb"] + stripes[..., None] * (q["bg2_rgb"] - q["bg_rgb"])
    canvas += (0.04 * q["bg_stripes"] * texture)[..., None]
    return canvas.astype(_F)


def _hair_colour(x, y, q: Params, texture: np.ndarray) -> np.ndarray:
    """Hair: strands for straight hair, grain for curly hair."""
    strands = np.sin(55.0 * x + 4.0 * np.sin(9.0 * y))
    shade = 1.0 + 0.15 * (1 - q["curl"]) * strands + 0.35 * q["curl"] * texture
    return q["hair_rgb"] * shade[..., None]


def _draw_body(canvas, x, y, px, q: Params, hair_rgb) -> None:
    """Shoulders, long hair behind the head, neck (drawn back to front)."""
    _over(canvas, _ellipse(x, y, 0.0, 1.30, 1.0, 0.62, px), q["clothes_rgb"])
    hw, hh = q["head_w"], q["head_h"]
    hair_end = 0.25 + 0.7 * q["hair_len"]
    back = np.maximum(
        _ellipse(x, y, 0.0, -0.03, hw * 1.22, hh * 1.1, px),
        _band(x, -hw * 1.25, hw * 1.25, px) * _band(y, -0.1, hair_end, px),
    )
    _over(canvas, back * (q["long_hair"] * q["hair_alpha"]), hair_rgb * 0.8)
    neck = _band(x, -hw * 0.45, hw * 0.45, px) * _band(y, 0.2, 0.95, px)
    _over(canvas, neck, q["skin"] * 0.78)


def _draw_skin(canvas, x, y, px, face, q: Params, texture) -> None:
    """Face with rounded shading, skin roughness (grows with age) and children's rosy cheeks."""
    u, v = x / q["head_w"], y / q["head_h"]
    shade = (1.07 - 0.22 * (u * u + v * v)) * (1.0 + q["roughness"] * texture)
    _over(canvas, face, q["skin"] * shade[..., None])
    cheeks = _ellipse(np.abs(x - q["yaw"]), y, q["eye_x"] + 0.02, q["nose_y"], 0.075, 0.05, px)
    _over(canvas, cheeks * q["blush"] * face, q["skin"] * np.array([1.05, 0.72, 0.72], dtype=_F))
    flush = _ellipse(np.abs(x - q["yaw"]), y, q["eye_x"] + 0.03, q["nose_y"] + 0.02, 0.11, 0.08, px)
    _over(canvas, flush * q["flush"] * face, _FLUSH_RGB.astype(_F))


def _draw_wrinkles(canvas, x, y, px, face, q: Params) -> None:
    """Dark line texture: forehead lines, crow's feet, nasolabial folds, eye bags."""
    xs = np.abs(x - q["yaw"])
    lines = np.cos(_F(np.pi / 0.095) * (y + 0.015 * np.sin(7.0 * x))) ** 2
    forehead = lines * lines * lines * _band(y, q["hair_line"] + 0.04, q["brow_y"] - 0.03, px)
    forehead *= _band(x, -0.65 * q["head_w"], 0.65 * q["head_w"], px)
    dx, dy = xs - (q["eye_x"] + 1.25 * q["eye_rx"]), y - q["eye_y"]
    fan = np.cos(_F(2.6 * np.pi) * dy / (dx + 0.02)) ** 2
    fan = fan * fan * fan
    crow = fan * np.clip((0.09 - np.sqrt(dx * dx + dy * dy)) / 0.02, 0, 1) * np.clip(dx / px, 0, 1)
    fold = xs - (1.3 * q["nose_w"] + 0.03 + 0.45 * (y - q["nose_y"]))
    naso = np.exp(-((fold / 0.014) ** 2)) * _band(y, q["nose_y"] - 0.04, q["mouth_y"] + 0.05, px)
    bx, by = (xs - q["eye_x"]) / (1.2 * q["eye_rx"]), (y - q["eye_y"]) / (2.4 * q["eye_ry"])
    r = np.sqrt(bx * bx + by * by)
    bags = np.exp(-(((r - 1) / 0.12) ** 2)) * (y > q["eye_y"])
    darken = q["wrinkles"] * (0.55 * forehead + 0.45 * crow + 0.4 * naso) + 0.3 * q["eye_bags"] * bags
    canvas *= (1.0 - face * np.minimum(darken, 0.9))[..., None]


def _draw_beard(canvas, x, y, px, face, q: Params, texture) -> None:
    """Full beard / stubble over the lower face and sideburns; moustache and goatee."""
    lower = face * np.maximum(
        1.0 - _above(y, q["nose_y"] + 0.025, px),
        (1.0 - _above(np.abs(x), 0.8 * q["head_w"], px)) * (1.0 - _above(y, q["eye_y"] - 0.05, px)),
    )
    xm, lip_gap = x - q["yaw"], q["mouth_y"] - q["nose_y"]
    moustache = np.maximum(
        _ellipse(xm, y, 0.0, q["nose_y"] + 0.5 * lip_gap, 1.1 * q["mouth_w"], 0.38 * lip_gap, px),
        _ellipse(xm, y, 0.0, q["mouth_y"] + 0.075, 0.085, 0.07, px),  # goatee
    )
    alpha = np.minimum(q["beard_full"] * lower + q["beard_moustache"] * moustache, 1.0)
    _over(canvas, alpha * (0.75 + 0.25 * np.clip(texture, -1, 1)), q["beard_rgb"])


def _draw_features(canvas, x, y, px, q: Params) -> None:
    """Eyes (sclera + iris), brows, nostrils with a shadow, mouth; mirrored features drawn once via |x|."""
    xs, xm = np.abs(x - q["yaw"]), x - q["yaw"]
    eye_x, eye_y, rx, ry = q["eye_x"], q["eye_y"], q["eye_rx"], q["eye_ry"]
    sclera = _ellipse(xs, y, eye_x, eye_y, rx, ry, px)
    _over(canvas, sclera, _SCLERA.astype(_F))
    iris = np.minimum(_ellipse(xs, y, eye_x, eye_y, 0.95 * ry, 0.95 * ry, px), sclera)
    _over(canvas, iris, q["iris"])
    brows = _ellipse(xs, y, eye_x + 0.01, q["brow_y"], 1.35 * rx, q["brow_h"], px)
    _over(canvas, brows * q["brow_alpha"], q["brow_rgb"])
    shadow = _ellipse(xm, y, 0.0, q["nose_y"] + 0.03, 1.1 * q["nose_w"], 0.02, px)
    _over(canvas, 0.25 * shadow, q["skin"] * 0.6)
    nostrils = _ellipse(xs, y, 0.6 * q["nose_w"], q["nose_y"], 0.38 * q["nose_w"], 0.016, px)
    _over(canvas, 0.7 * nostrils, q["skin"] * 0.45)
    _over(canvas, _ellipse(xm, y, 0.0, q["mouth_y"], q["mouth_w"], q["mouth_h"], px), q["lip_rgb"])


def _draw_scalp_hair(canvas, x, y, px, face, q: Params, hair_rgb) -> None:
    """Hair cap above a (possibly receding) hairline, short side hair, long strands framing the face."""
    hw, hh, recession = q["head_w"], q["head_h"], q["recession"]
    u2 = (x / hw) ** 2
    hairline = q["hair_line"] + 0.10 * u2 - recession * (0.28 + 0.40 * u2)  # M-shaped recession
    skull = _ellipse(x, y, 0.0, -0.02, hw * (1 + q["hair_volume"]), hh * (1.02 + q["hair_volume"]), px)
    cap = skull * _above(y, hairline, px)
    sides = skull * (1.0 - _above(np.abs(x), 0.86 * hw, px)) * _above(y, q["eye_y"] - 0.02, px)
    strands = face * (1.0 - _above(np.abs(x), 0.8 * hw, px)) * _above(y, q["eye_y"] + 0.28, px)
    alpha = np.maximum(np.maximum(cap, sides), strands * q["long_hair"]) * q["hair_alpha"]
    _over(canvas, alpha, hair_rgb)


def _draw_occluder(canvas, X, Y, q: Params, size: int, texture) -> None:
    """A random flat patch (hand, object, watermark) in image coordinates."""
    px = _F(2.0 / size)
    box = _band(X, q["occ_x"] - q["occ_w"] / 2, q["occ_x"] + q["occ_w"] / 2, px)
    box = box * _band(Y, q["occ_y"] - q["occ_h"] / 2, q["occ_y"] + q["occ_h"] / 2, px)
    _over(canvas, box * q["occluded"], q["occ_rgb"] * (1.0 + 0.05 * texture[..., None]))


def _apply_lighting(canvas, X, Y, q: Params) -> None:
    """Global gain, a linear light gradient and a colour cast."""
    angle = q["gradient_angle"]
    light = q["gain"] * (1.0 + q["gradient"] * (np.cos(angle) * X + np.sin(angle) * Y))
    canvas *= light[..., None] * q["cast"]


def _blur_radius(size: int) -> int:
    return int(np.ceil(3.0 * _MAX_BLUR_PX_AT_64 * size / 64))


def _blur(canvas: np.ndarray, sigma: np.ndarray, radius: int) -> np.ndarray:
    """Separable Gaussian blur with a per-image sigma, as a sum of shifted copies (no BLAS, so the
    summation order and hence the bytes do not depend on threads or batch size)."""
    taps = np.arange(-radius, radius + 1, dtype=_F)
    weights = np.exp(-0.5 * (taps[None, :] / sigma[:, None]) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    weights = weights[:, :, None, None, None]  # (B, T, 1, 1, 1)
    size = canvas.shape[1]
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(canvas, pad, mode="edge")
        out = np.zeros_like(canvas)
        for k in range(2 * radius + 1):
            window = padded[:, k : k + size] if axis == 1 else padded[:, :, k : k + size]
            out += weights[:, k] * window
        canvas = out
    return canvas
