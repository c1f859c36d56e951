"""The synthetic-faces generator: contract, determinism, and that each promised cue is really in the pixels.

Cue tests render frontal, studio-like images (nuisance=0) so that face regions sit at known pixel
positions, then assert on measured statistics (correlations, group means), never on stored bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from agebench.data import render
from agebench.data.render import RACE_NAMES, SyntheticSpec, draw, generate, generate_labels

SIZE = 64  # cue tests need enough pixels for wrinkles and eyes


def _spec(**overrides) -> SyntheticSpec:
    base = {"n_subjects": 12, "images_per_subject": 3, "image_size": 32, "seed": 5}
    return SyntheticSpec(**{**base, **overrides})


@pytest.fixture(scope="module")
def small():
    return generate(_spec())


def _studio(gender_specific_aging: float) -> tuple[np.ndarray, pd.DataFrame]:
    spec = SyntheticSpec(
        n_subjects=400,
        images_per_subject=1,
        image_size=SIZE,
        nuisance=0.0,
        seed=3,
        gender_specific_aging=gender_specific_aging,
    )
    return generate(spec)


@pytest.fixture(scope="module")
def studio():
    return _studio(0.0)


@pytest.fixture(scope="module")
def studio_gendered():
    return _studio(1.0)


# -- face regions and statistics (face-frame coordinates: x right, y down, face centre at 0,0) --


def _region(images: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Pixels of a face-frame box as floats in [0, 1] (valid for nuisance=0, where the frame is fixed)."""
    size = images.shape[1]

    def to_pixel(v: float) -> int:
        return int(round((v + 1) / 2 * size))

    rows = slice(to_pixel(y0 + draw.FACE_CENTRE_Y), to_pixel(y1 + draw.FACE_CENTRE_Y))
    return images[:, rows, to_pixel(x0) : to_pixel(x1)].astype(float) / 255


def _cheek_rgb(images: np.ndarray) -> np.ndarray:
    """(N, 3) mean colour of both cheeks: skin, away from eyes, nose, mouth, hair and beard."""
    left, right = _region(images, -0.3, -0.18, 0.05, 0.15), _region(images, 0.18, 0.3, 0.05, 0.15)
    return np.concatenate([left, right], axis=2).mean(axis=(1, 2))


def _high_frequency(pixels: np.ndarray) -> np.ndarray:
    """Mean |Laplacian| of the grey image: line texture and roughness."""
    g = pixels.mean(axis=-1)
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return np.abs(lap).mean(axis=(1, 2))


def _wrinkle_energy(images: np.ndarray) -> np.ndarray:
    return _high_frequency(_region(images, -0.3, 0.3, -0.3, 0.3))


def _near_white(pixels: np.ndarray, floor: float) -> np.ndarray:
    """Fraction of bright, unsaturated pixels (sclera, grey hair) per image."""
    return ((pixels.min(-1) > floor) & (np.ptp(pixels, axis=-1) < 0.09)).mean(axis=(1, 2))


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation; 0 when either side is constant (no association to measure)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b)[0])


# -- contract ---------------------------------------------------------------------------------


def test_shapes_dtypes_and_label_ranges(small):
    images, labels = small
    assert images.shape == (36, 32, 32, 3) and images.dtype == np.uint8 and images.flags.c_contiguous
    assert list(labels.columns) == ["subject", "age", "gender", "race", "image"]
    assert len(labels) == 36 and labels.index.equals(pd.RangeIndex(36))
    assert (
        labels.age.dtype == np.float64 and labels.gender.dtype == np.int64 and labels.race.dtype == np.int64
    )
    assert labels.age.between(0.0, 80.0).all()
    assert set(labels.gender) <= {0, 1} and set(labels.race) <= set(range(len(RACE_NAMES)))
    assert labels.subject.iloc[0] == "s00000" and labels.image.iloc[4] == "s00001_1"
    assert labels.image.is_unique
    assert (
        labels.subject.values == np.repeat([f"s{i:05d}" for i in range(12)], 3)
    ).all()  # subject by subject
    assert RACE_NAMES == ("White", "Black", "Asian", "Indian", "Others")


def test_images_are_not_blank(small):
    images, _ = small
    assert images.std(axis=(1, 2, 3)).min() > 10


def test_custom_age_range_and_size():
    images, labels = generate(_spec(age_range=(20.0, 30.0), image_size=40, n_subjects=4))
    assert images.shape == (12, 40, 40, 3)
    assert labels.age.between(20.0, 30.0).all()


@pytest.mark.parametrize(
    "bad",
    [
        {"n_subjects": 0},
        {"image_size": 4},
        {"age_range": (50.0, 10.0)},
        {"label_noise": 1.5},
        {"nuisance": -0.1},
        {"gender_specific_aging": 2.0},
        {"seed": -1},
        {"age_spread": -1.0},
    ],
)
def test_invalid_spec_is_rejected_with_the_field_named(bad):
    field = next(iter(bad))
    with pytest.raises(ValueError, match=field):
        _spec(**bad)


def test_labels_without_rendering_match_generate(small):
    pd.testing.assert_frame_equal(generate_labels(_spec()), small[1])
    noisy = _spec(label_noise=0.4)
    pd.testing.assert_frame_equal(generate_labels(noisy), generate(noisy)[1])


# -- determinism ------------------------------------------------------------------------------


def test_same_spec_gives_identical_bytes_and_labels(small):
    images, labels = generate(_spec())
    assert np.array_equal(images, small[0])
    pd.testing.assert_frame_equal(labels, small[1])


def test_different_seed_differs(small):
    images, labels = generate(_spec(seed=6))
    assert not np.array_equal(images, small[0])
    assert not np.allclose(labels.age.values, small[1].age.values)


def test_output_does_not_depend_on_batching_or_subject_count(small):
    images, labels = render._generate(_spec(), batch_size=5)
    assert np.array_equal(images, small[0])
    pd.testing.assert_frame_equal(labels, small[1])
    # nor on how many threads render the batches
    threaded, threaded_labels = render._generate(_spec(), batch_size=5, workers=3)
    assert np.array_equal(threaded, small[0])
    pd.testing.assert_frame_equal(threaded_labels, small[1])
    # subject i renders the same whatever the total number of subjects
    fewer_images, fewer_labels = generate(_spec(n_subjects=4))
    assert np.array_equal(fewer_images, small[0][:12])
    pd.testing.assert_frame_equal(fewer_labels, small[1].iloc[:12])


# -- subjects ---------------------------------------------------------------------------------


def test_subjects_have_several_images_at_nearby_ages():
    spec = _spec(n_subjects=60, images_per_subject=4, age_spread=3.0)
    labels = generate_labels(spec)
    per_subject = labels.groupby("subject")
    assert (per_subject.size() == 4).all()
    assert (per_subject.age.agg(np.ptp) <= 2 * 3.0 + 1e-9).all()  # all within ± spread of a base age
    assert per_subject.age.agg(np.ptp).mean() > 1.0  # ...but not all the same age
    assert (per_subject.gender.nunique() == 1).all() and (per_subject.race.nunique() == 1).all()
    # the subjects themselves cover the age range
    assert labels.age.min() < 10 and labels.age.max() > 70


def test_identity_is_persistent_so_subject_leakage_inflates_accuracy():
    """1-nearest-neighbour age regression on face pixels: a test image whose subject is in the
    training set finds that subject (and so nearly its age); a subject-exclusive split cannot."""
    spec = SyntheticSpec(n_subjects=150, images_per_subject=4, image_size=32, nuisance=0.2, seed=11)
    images, labels = generate(spec)
    faces = images[:, 4:26, 8:24].reshape(len(images), -1).astype(np.float32)  # face crop, no clothes
    faces -= faces.mean(axis=1, keepdims=True)
    subject = labels.subject.str[1:].astype(int).values
    ages = labels.age.values

    def nearest(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        a, b = faces[test], faces[train]
        d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
        return train[d.argmin(axis=1)]

    leaky_test = np.flatnonzero(np.arange(len(images)) % 4 == 0)  # one image of every subject
    exclusive_test = np.flatnonzero(subject % 4 == 0)  # every image of a quarter of the subjects
    leaky_nn = nearest(np.setdiff1d(np.arange(len(images)), leaky_test), leaky_test)
    exclusive_nn = nearest(np.setdiff1d(np.arange(len(images)), exclusive_test), exclusive_test)
    assert np.mean(subject[leaky_nn] == subject[leaky_test]) > 0.6  # chance: 3/599
    leaky_mae = np.abs(ages[leaky_nn] - ages[leaky_test]).mean()
    exclusive_mae = np.abs(ages[exclusive_nn] - ages[exclusive_test]).mean()
    assert leaky_mae < 0.5 * exclusive_mae


# -- cues -------------------------------------------------------------------------------------


def test_race_cue_skin_tone_orders_by_race_but_overlaps(studio):
    images, labels = studio
    brightness = _cheek_rgb(images).mean(axis=1)
    mean = {RACE_NAMES[k]: brightness[labels.race.values == k].mean() for k in range(5)}
    assert mean["Black"] < mean["Indian"] < mean["Others"] < min(mean["White"], mean["Asian"])
    # not a lookup table: neighbouring classes' tone distributions overlap
    white, asian = (brightness[labels.race.values == k] for k in (0, 2))
    assert asian.max() > white.min() and white.max() > asian.min()


def test_gender_cue_beard_on_adult_men_only(studio):
    images, labels = studio
    chin = _region(images, -0.12, 0.12, 0.36, 0.5).mean(axis=(1, 2))
    beard_contrast = np.abs(chin - _cheek_rgb(images)).sum(axis=1)
    age, gender = labels.age.values, labels.gender.values
    men, women, boys = (gender == 0) & (age > 25), (gender == 1) & (age > 25), (gender == 0) & (age < 10)
    unflushed_women = (gender == 1) & (age > 16) & (age < 26)  # the adult flush (from 20 y) tints the cheek reference
    assert beard_contrast[men].mean() > 2 * beard_contrast[unflushed_women].mean()
    assert beard_contrast[boys].mean() < 0.6 * beard_contrast[men].mean()
    assert np.mean(beard_contrast[men] < np.median(beard_contrast[women])) > 0.08  # some men shave


def test_gender_cue_hair_length(studio):
    images, labels = studio
    # beside the neck, below the jaw and above the shoulders: long hair or background
    beside_neck = np.concatenate(
        [_region(images, -0.5, -0.3, 0.5, 0.66), _region(images, 0.3, 0.5, 0.5, 0.66)], axis=2
    )
    background = np.array([0.5, 0.5, 0.5])  # nuisance=0 gives a plain grey background
    hair_cover = (np.abs(beside_neck - background).sum(-1) > 0.15).mean(axis=(1, 2))
    gender = labels.gender.values
    assert hair_cover[gender == 1].mean() > 0.45
    assert hair_cover[gender == 0].mean() < 0.2


def test_age_cue_children_have_big_eyes(studio):
    images, labels = studio
    sclera = _near_white(_region(images, -0.35, 0.35, -0.15, 0.15), floor=0.75)
    age = labels.age.values
    assert sclera[age < 8].mean() > 2.5 * sclera[(age > 20) & (age < 60)].mean()


def test_age_cue_wrinkles_grow_with_age(studio):
    images, labels = studio
    energy = _wrinkle_energy(images)
    age, women = labels.age.values, labels.gender.values == 1
    adult = women & (age > 20)
    assert _rho(age[adult], energy[adult]) > 0.5
    # 1.4, not 1.5, since renderer 3: lipstick on 80 % of women lifts the young faces' line energy too
    assert energy[women & (age > 60)].mean() > 1.4 * energy[women & (age > 18) & (age < 28)].mean()


def test_age_cue_hair_greys_with_age(studio):
    images, labels = studio
    grey = _near_white(_region(images, -0.15, 0.15, -0.52, -0.38), floor=0.6)
    age = labels.age.values
    assert grey[age > 65].mean() > 0.5
    assert grey[(age > 18) & (age < 32)].mean() < 0.05


def test_gender_specific_aging_makes_the_adult_cues_read_backwards_for_women(studio, studio_gendered):
    """Coupling g: at 0 the adult cues (here the wrinkles) grow with age for everyone; at 1 they still grow
    with age for men but shrink with age for women, so the same wrinkles mean a young woman or an old man,
    and over all adults they say nothing about age without the gender. Both renders share seed and
    subjects, so their difference is the coupling alone."""
    (plain, labels), (gendered, _) = studio, studio_gendered
    age, gender = labels.age.values, labels.gender.values
    men, women = (age > 22) & (gender == 0), (age > 22) & (gender == 1)
    for group in (men, women):
        assert _rho(age[group], _wrinkle_energy(plain)[group]) > 0.5
    energy = _wrinkle_energy(gendered)
    assert _rho(age[men], energy[men]) > 0.5
    assert _rho(age[women], energy[women]) < -0.5
    assert abs(_rho(age[men | women], energy[men | women])) < 0.3
    children = age < 12  # children's cues never depend on the coupling
    assert np.abs(_wrinkle_energy(plain)[children] - energy[children]).max() < 1e-6


def test_renderer_version_is_part_of_the_image_cache_key(tmp_path, monkeypatch):
    """A redesigned renderer (a new RENDERER_VERSION) renders again instead of serving the faces an older
    one cached for the same spec; the same version is a cache hit."""
    from omegaconf import OmegaConf

    from agebench.data import loading

    cfg = OmegaConf.load(Path(__file__).parents[1] / "conf" / "data" / "synthetic.yaml")
    cfg.update({"n_subjects": 3, "images_per_subject": 1, "image_size": 16, "load_size": 16, "render_workers": 1})
    monkeypatch.setattr(loading, "_LOADED", {})  # the per-process reuse would hide the disk cache

    def load():
        loading._LOADED.clear()
        return loading.load_dataset(cfg, tmp_path).images

    first = load().copy()
    renders, real = [], render.generate
    monkeypatch.setattr(render, "generate", lambda *a, **k: renders.append(1) or real(*a, **k))
    assert np.array_equal(load(), first) and renders == []
    monkeypatch.setattr(render, "RENDERER_VERSION", render.RENDERER_VERSION + 1)
    load()
    assert renders == [1]


def test_nuisance_zero_is_frontal_and_plain(studio):
    images, _ = studio
    corner = images[:, :4, :4].reshape(len(images), -1)
    assert np.abs(corner.astype(int) - 128).mean() < 6  # plain grey background, only sensor noise


def test_nuisance_varies_backgrounds():
    images, _ = generate(_spec(n_subjects=20, images_per_subject=1, nuisance=1.0))
    corner = images[:, :4, :4].reshape(len(images), -1).mean(axis=1)
    assert corner.std() > 20


# -- label noise ------------------------------------------------------------------------------


def test_label_noise_flips_the_promised_share_and_leaves_pixels_alone():
    clean_spec = _spec(n_subjects=500, images_per_subject=2, image_size=8)
    noisy_spec = dataclasses.replace(clean_spec, label_noise=0.3)
    clean, noisy = generate_labels(clean_spec), generate_labels(noisy_spec)
    n = len(clean)
    tolerance = 4 * np.sqrt(0.3 * 0.7 / n)  # four binomial standard errors
    assert abs((clean.gender != noisy.gender).mean() - 0.3) < tolerance
    assert abs((clean.race != noisy.race).mean() - 0.3) < tolerance
    flipped = clean.race != noisy.race
    assert noisy.race[flipped].nunique() == 5 and noisy.race.between(0, 4).all()
    jitter = (noisy.age - clean.age)[clean.age.between(15, 65)]
    assert 2.0 < jitter.std() < 4.0  # 10 * 0.3 = 3 years
    assert noisy.age.between(0, 80).all()
    assert (noisy[["subject", "image"]] == clean[["subject", "image"]]).all().all()
    assert np.array_equal(
        generate(dataclasses.replace(clean_spec, n_subjects=3))[0],
        generate(dataclasses.replace(noisy_spec, n_subjects=3))[0],
    )
