"""Procedurally rendered synthetic faces: agebench's embedded default dataset (the ``synthetic`` source,
agebench/data/sources/synthetic.py, serves them to training).

Every image is drawn with numpy from a handful of per-subject and per-image parameters, so the
whole suite runs on a fresh machine with no download, and the same :class:`SyntheticSpec` always
gives byte-identical images and labels. The package's modules, in the order a face is made:

* ``spec``: :class:`SyntheticSpec` (what to render), the race classes, the renderer version (cache key);
* ``streams``: one random generator per (seed, stream, subject[, image]);
* ``faces``: each subject's identity, each image's age, the look that age implies (the task coupling
  lives here), the capture nuisance, and the stored (possibly noisy) labels;
* ``draw``: rasterising a batch of faces (element-wise numpy, no BLAS);
* this module: :func:`generate` / :func:`generate_labels`, batching and render threads.

What a model can learn from the pixels (and what gets in its way):

* **identity** (persistent per subject): head width/height, eye spacing and size, nose and mouth
  width, lip thickness, skin tone, hair colour, hair style and length, hairline, brow thickness,
  beard style, greying onset, and the clothes the subject usually wears. A subject's images are at
  nearby ages (``± age_spread``), so a model that has seen the subject in training recognises it in
  test: subject leakage inflates accuracy, as on real face datasets, and the more of a subject's
  images sit in training, the more surely the model recognises it (sweeps/leakage.yaml).
* **age**: children (< 16 y) have a rounder face, a big cranium (eyes low on the face, a tall
  forehead), big eyes, a small nose/mouth, rosy cheeks and sparse baby hair; adults gain wrinkle
  lines (forehead, crow's feet, nasolabial folds, eye bags), rough skin texture from about 28 y, a
  rose flush over the cheeks from about 20 y, and grey hair from a subject-specific onset around 42 y;
  men's hairlines recede; men grow a beard from about 14 y.
* **gender**: hair length (most women long, very few men), beard (most adult men; none for women or
  boys), thicker brows and a slightly wider head for men, fuller and mostly painted lips for women.
  Children's gender is mostly carried by hair, so it is genuinely harder.
* **race** (UTKFace's five classes and rough proportions): skin tone (overlapping distributions,
  further confounded by lighting), hair colour and curl, eye opening, nose width, lip thickness.
* **gender-specific aging** (``gender_specific_aging`` g, the task coupling): how the adult cues
  (wrinkles, eye bags, skin roughness, flush, greying, eye opening, lip thinning) are read. They follow
  a *cue age*: a man's cue age is his age; a woman's is ``(1 - g)·age + g·(100 - age)`` over the adult
  years 20..80 (from puberty on; men's receding hairline, a cue that needs no gender to read, fades by
  ``1 - g``). At g = 0 the adult cues grow with age for everyone; at g = 1 they grow with age for men and
  *shrink* with age for women: a 25-year-old woman looks as weathered as a 75-year-old man, and a
  smooth adult face means a young man or an old woman. Over all adults the cues then say nothing about
  age; only together with the gender do they read it. Children's cues never depend on g.

  Why this moves the multi-task gain (sweeps/coupling.yaml; seed 001's argument that gender supervision
  shapes the shared features when age labels are few): reading an adult's age at g = 1 is an
  interaction, age ≈ f(cue) for men and f(-cue) for women, so the shared trunk must carry a clean
  gender feature next to the cue features. The study plants the regime where that matters: every
  training face carries its gender, but only an eighth of the training subjects their age
  (``data.age_label_fraction=0.125``: about 80 people, 320 faces; agebench/data/label_budget.py). The
  gender head then pays for the gender feature on every image with a direct signal, and the age head
  only has to learn the interaction on top of it; an age-only trunk must discover gender through the
  interaction alone, from a few hundred age labels in eight coarse bins, where neither half helps the
  age loss until the other exists (the age residual of a trunk without gender is uncorrelated with the
  gender, so no gradient leads it there). At g = 0 the gender feature is useless to the age head (adult
  cues read the same for both genders), so age+gender ≈ age alone. The strength of the gender cues (long
  hair, lipstick, beards) is part of the design: the gender head can only hand over a feature it can
  learn, and the gain grows with its accuracy (folds whose gender head stayed below ~85 % gained least).

  Designs measured and rejected at g = 1, so nobody tries them again:

  - every age label kept (400 subjects, fraction 1, 1150 training faces, 30 epochs): an age-only trunk learns the interaction by
    itself (age-only top-1 49.4 % at g = 1 vs 55.1 % at g = 0, data.seed 1) and age+gender was not
    better (-5.5 points over 2 folds): the label budget, not the coupling alone, makes the gender labels pay;
  - an additive coupling (a woman's adult cues 15 years ahead of her age, a man's 15 behind; the study's
    regime at 40 epochs, data.seed 0 / 1 / 2, where the mirror gave +2.6 / +3.4 / +7.0): both
    task-sets read age well (MAE 12-14 years) and the gain shrank to +3.5 / +0.5 / +0.6 points, none
    significant: a shift is linear in (cue, gender), and an age-only trunk learns it from the residual;
  - shorter training (the study's regime): at 20 / 40 / 60 epochs the Δ top-1 was +0.4 / +2.6 / +5.7 points on data.seed 0
    (the gender feature is learnt late; the age-only arm does not improve with epochs).

  Measured (issue 14, renderer 3, sweeps/coupling.yaml: 800 subjects × 4 images at 32 px, age labels on
  an eighth of the training subjects, 60 epochs, 5 folds, paired t-test over folds), Δ age top-1
  (age+gender − age, points) for data.seed 0 / 1 / 2: at g = 0 -2.78 (95% CI -5.94..0.39, p = 0.072) /
  -0.06 (-1.83..1.71, p = 0.93) / +1.58 (-3.89..7.05, p = 0.47), every CI holding 0; at g = 1 +5.67
  (-1.56..12.91, p = 0.095) / +4.47 (2.20..6.74, p = 0.005) / +8.50 (4.78..12.22, p = 0.003). Δ age MAE
  at g = 1: -1.23 / -2.02 / -1.71 years (p = 0.13 / < 0.001 / 0.062). So the coupling moves the gain,
  positive at g = 1 on every seed and significant on two of three; fold-to-fold noise (~4 points of top-1
  std with ~640 test faces) is what keeps seed 0 at p = 0.095. With 5 folds only the t-test can reach
  p < 0.05 (the two-sided Wilcoxon's floor is 0.0625); the report's "Δ, p" column is the t-test.
* **nuisance** (all scaled by ``nuisance``): in-plane rotation, shift, scale, yaw-like feature
  shift, global gain, lighting gradient, colour cast, random background colour and stripes,
  a little variation of the clothes' colour, Gaussian blur, random occluding patches; a little sensor
  noise always.
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

    python -c "import time; from agebench.data.render import SyntheticSpec, generate; \\
    t = time.perf_counter(); x, y = generate(SyntheticSpec(n_subjects=2500, images_per_subject=4)); \\
    print(x.shape, f'{time.perf_counter() - t:.1f} s')"
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agebench.data.render.draw import render_batch
from agebench.data.render.faces import draw_images, draw_subjects, stored_labels
from agebench.data.render.spec import RACE_NAMES, RENDERER_VERSION, SyntheticSpec
from agebench.data.render.streams import image_keys, noise_fields

__all__ = ["RACE_NAMES", "RENDERER_VERSION", "SyntheticSpec", "generate", "generate_labels"]

_BATCH = 64  # images rendered together: big enough to amortise numpy overhead, small for cache


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
    return stored_labels(spec, draw_images(spec, draw_subjects(spec)), image_keys(spec))


def _generate(spec: SyntheticSpec, batch_size: int, workers: int | None = 1) -> tuple[np.ndarray, pd.DataFrame]:
    from agebench.runtime.progress import (
        counted_work,  # a bar with counts on a terminal, start/end lines otherwise
    )

    subjects = draw_subjects(spec)
    params = draw_images(spec, subjects)
    keys = image_keys(spec)
    size = spec.image_size
    images = np.empty((spec.n_images, size, size, 3), dtype=np.uint8)

    def render(start: int) -> None:  # a batch depends only on its own parameters and noise keys
        stop = min(start + batch_size, spec.n_images)
        batch = {name: value[start:stop] for name, value in params.items()}
        noise = noise_fields(spec.seed, keys[start:stop], size)
        images[start:stop] = render_batch(batch, noise, size)
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
    return images, stored_labels(spec, params, keys)


def _available_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
