"""What each face looks like: a subject's persistent identity, each image's age and the appearance that age
implies (including the task coupling, ``gender_specific_aging``: agebench/data/render/__init__.py explains
the design), the capture nuisance, and the stored labels with their noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agebench.data.render.draw import MAX_BLUR_PX_AT_64
from agebench.data.render.spec import Params, SyntheticSpec
from agebench.data.render.streams import (
    IMAGE_DRAWS,
    IMAGE_STREAM,
    LABEL_DRAWS,
    LABEL_STREAM,
    SUBJECT_DRAWS,
    SUBJECT_STREAM,
    Draws,
    image_keys,
    stream_uniforms,
)

__all__ = ["draw_images", "draw_subjects", "stored_labels"]

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
_FLUSH_ALPHA = 0.8  # its opacity at full strength
_ADULT_START, _ADULT_END = 20.0, 80.0  # the adult years that gender-specific aging mirrors for women
_LIPSTICK = np.array([0.72, 0.16, 0.22])
_BEARD_STYLES = np.array([0.15, 0.30, 0.35, 0.20])  # men: clean-shaven, stubble, full, moustache+goatee


def draw_subjects(spec: SyntheticSpec) -> Params:
    n = spec.n_subjects
    d = Draws(stream_uniforms(spec.seed, SUBJECT_STREAM, [(s,) for s in range(n)], SUBJECT_DRAWS))
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
    p["long_hair"] = (d.uniform() < np.where(male, 0.05, 0.9)).astype(float)
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
    p["lipstick"] = (~male & (d.uniform() < 0.8)).astype(float)
    p["iris"] = _IRIS_PALETTE[d.choice(_IRIS_PRIORS[race])]
    p["outfit_rgb"] = np.stack([d.uniform(0.1, 0.9) for _ in range(3)], axis=1)  # the subject's usual clothes
    return p


def draw_images(spec: SyntheticSpec, subjects: Params) -> Params:
    """Per-image parameters: subject identity, this image's age and the look it implies, nuisance."""
    keys = image_keys(spec)
    d = Draws(stream_uniforms(spec.seed, IMAGE_STREAM, keys, IMAGE_DRAWS))
    owner = np.repeat(np.arange(spec.n_subjects), spec.images_per_subject)
    p = {name: value[owner] for name, value in subjects.items()}
    low, high = spec.age_range
    p["age"] = _reflect_into(p["base_age"] + d.signed(spec.age_spread), low, high)
    p.update(_appearance(p, spec.gender_specific_aging, d.uniform()))
    p.update(_nuisance(d, spec.nuisance, spec.image_size))
    # a subject mostly wears the same clothes: identity a leaking model can memorise beyond the face itself
    p["clothes_rgb"] = _mix(p["outfit_rgb"], p["clothes_rgb"], 0.2)
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
    # Coupling g (module docstring, "gender-specific aging"): the adult cues follow a "cue age" that for
    # women runs backwards at g = 1 (a 25-year-old woman shows what a 75-year-old man shows), from puberty on.
    mirrored = _ADULT_END + _ADULT_START - np.clip(age, _ADULT_START, _ADULT_END)
    cue_age = np.where(female, (1.0 - gender_specific) * age + gender_specific * mirrored, age)
    onset = _ramp(age, 14.0, _ADULT_START)  # no adult cue before puberty, whatever the cue age
    adult = np.clip((cue_age - 28.0) / 45.0, 0.0, 1.15) * onset  # wrinkle ramp
    greying = _ramp(cue_age - p["grey_onset"], 0.0, 25.0) * onset
    recession = male * p["recession_rate"] * _ramp(age, 22.0, 62.0) * (1.0 - gender_specific)  # men only: faded
    beard_grey = greying
    flush = _ramp(cue_age, 20.0, 75.0) * onset
    eye_bags = _ramp(cue_age, 35.0, 75.0) * onset
    beard = male * _ramp(age, 14.0, 22.0)
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
    q["brow_h"] = p["brow_h"]
    q["hair_len"] = p["hair_len"]
    q["nose_y"] = q["eye_y"] + 0.20 * (1 - 0.35 * child)
    q["nose_w"] = p["nose_w"] * (1 - 0.25 * child)
    q["mouth_y"] = q["eye_y"] + 0.33 * (1 - 0.30 * child)
    q["mouth_w"] = p["mouth_w"] * (1 - 0.30 * child) * (1 + 0.15 * (expression - 0.5))
    q["mouth_h"] = 0.021 * p["lips"] * (1 - 0.3 * np.minimum(adult, 1)) * np.where(female, 1.2, 1.0)
    q["blush"] = 0.5 * child
    q["flush"] = _FLUSH_ALPHA * flush
    q["wrinkles"] = p["wrinkle_rate"] * adult
    q["eye_bags"] = eye_bags
    q["roughness"] = 0.025 + 0.07 * q["wrinkles"]
    q["recession"] = recession
    q["hair_alpha"] = 0.35 + 0.65 * _ramp(age, 0.0, 4.0)  # babies have sparse hair
    q["hair_rgb"] = _mix(p["hair"], _SILVER, greying)
    q["brow_rgb"] = _mix(p["hair"], _SILVER, 0.6 * greying) * 0.85
    q["beard_rgb"] = _mix(np.minimum(p["hair"], 0.35), _SILVER, beard_grey)
    q["beard_full"] = beard * np.select([style == 1, style == 2], [0.28, 0.85], 0.0)
    q["beard_moustache"] = beard * np.isin(style, (2, 3)) * 0.85
    lips = np.clip(p["skin"] * [1.0, 0.62, 0.62] - 0.04, 0, 1)
    q["lip_rgb"] = _mix(lips, _LIPSTICK, 0.85 * p["lipstick"] * _ramp(age, 14.0, 18.0))
    q["skin"] = np.clip(p["skin"] * (1 - 0.05 * adult[:, None]), 0, 1)
    return q


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    return a + (b - a) * (t[:, None] if t.ndim == 1 else t)


def _nuisance(d: Draws, amount: float, size: int) -> Params:
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
    q["blur_px"] = (0.35 + (MAX_BLUR_PX_AT_64 - 0.35) * amount * d.uniform() ** 2) * size / 64
    q["noise_std"] = 0.012 + 0.025 * amount * d.uniform()
    q["occluded"] = (d.uniform() < 0.25 * amount).astype(float)
    q["occ_x"], q["occ_y"] = d.signed(0.7), d.signed(0.7)
    q["occ_w"], q["occ_h"] = d.uniform(0.15, 0.45), d.uniform(0.15, 0.45)
    q["occ_rgb"] = np.stack([d.uniform(0.05, 0.95) for _ in range(3)], axis=1)
    return q


def stored_labels(spec: SyntheticSpec, p: Params, keys: list[tuple[int, int]]) -> pd.DataFrame:
    """Stored labels: the true ones, with label_noise applied on its own random stream."""
    d = Draws(stream_uniforms(spec.seed, LABEL_STREAM, keys, LABEL_DRAWS))
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
