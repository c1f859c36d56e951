"""Rasterising: a batch of faces at once, element-wise numpy over (B, S, S[, 3]) float32 arrays (no BLAS, no
threads inside, so the bytes depend on neither the batch size nor the number of render threads)."""

from __future__ import annotations

import numpy as np

from agebench.data.render.spec import Params

__all__ = ["FACE_CENTRE_Y", "MAX_BLUR_PX_AT_64", "render_batch"]

_F = np.float32
_FLUSH_RGB = np.array([0.85, 0.22, 0.30])  # the adult flush cue's colour (a saturated rose, on any skin tone)
_SCLERA = np.array([0.93, 0.92, 0.88])
FACE_CENTRE_Y = -0.06  # the face sits a little above the image centre, leaving room for shoulders
MAX_BLUR_PX_AT_64 = 1.45  # largest Gaussian blur sigma (pixels at 64 px; scales with image size)


def render_batch(p: Params, noise: np.ndarray, size: int) -> np.ndarray:
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
    dx, dy = X - q["shift_x"], Y - q["shift_y"] - _F(FACE_CENTRE_Y)
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
    flush = _ellipse(np.abs(x - q["yaw"]), y, q["eye_x"] + 0.03, q["nose_y"] + 0.02, 0.13, 0.10, px)
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
    return int(np.ceil(3.0 * MAX_BLUR_PX_AT_64 * size / 64))


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

