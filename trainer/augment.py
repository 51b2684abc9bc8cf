"""Training-time augmentation that makes MNIST look more like preprocessed photos of digits.

Photos of handwriting differ from MNIST after `trainer.images` has normalised them mostly in
position (the centre of mass is only approximately the centre), slant and size, pen width,
sharpness and the ink's intensity profile. `augment` draws, per image: an affine warp (shift,
rotation, scale, shear), a stroke width change (grey dilation or erosion), a blur, and a
contrast/gamma change. Pure numpy, vectorised over the batch; about 10 ms for a batch of 128 on
one core
(tools/augment_study.py measures the effect on epoch time).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes (each drawn uniformly, per image).

    max_shift: px in x and y; max_rotation: degrees; scale: (min, max) zoom factor; max_shear:
    x-shear factor; p_thicken / p_thin: probability of a 3x3-cross grey dilation / erosion
    (blended with the original by a random 0.5..1 weight); p_blur: probability of a 3x3 binomial
    blur; gamma: (min, max) exponent on the ink intensity; gain: (min, max) peak ink level;
    p_elastic: probability of an elastic warp (a smooth random displacement field, as a pen's
    hand wanders: pen-drawn shapes and font styles MNIST lacks) of up to `elastic` px. Off (0)
    by default: with p_elastic 0 no random numbers are drawn for it, so batches are as before.
    """

    max_shift: float = 2.0
    max_rotation: float = 12.0
    scale: tuple[float, float] = (0.85, 1.12)
    max_shear: float = 0.15
    p_thicken: float = 0.25
    p_thin: float = 0.15
    p_blur: float = 0.25
    gamma: tuple[float, float] = (0.6, 1.5)
    gain: tuple[float, float] = (0.75, 1.0)
    p_elastic: float = 0.0
    elastic: float = 1.5


DEFAULT = AugmentConfig()
# apply() works through a batch this many images at a time: the float64 temporaries of a chunk
# stay in the CPU's cache (256 images at once took 28 ms, 2 x 128 13 ms; measured on 2 busy cores).
CHUNK = 128


@dataclass(frozen=True)
class Draws:
    """The random numbers `augment` uses for one batch of n images, drawn by `draw` in a fixed
    order, so that drawing every batch of an epoch first and applying them later (in any order,
    on several threads) gives exactly the batches `augment` would have given one by one."""

    theta: np.ndarray  # (n,) rotation, radians
    zoom: np.ndarray  # (n,)
    shear: np.ndarray  # (n,)
    shift: np.ndarray  # (n, 2) (dy, dx) px
    warp: np.ndarray | None  # (n,) bool: elastic warp (None: p_elastic 0, nothing drawn)
    grid: np.ndarray | None  # (warp.sum(), 2, 4, 4) elastic offsets, px
    thick: np.ndarray  # (n,) bool: grey dilation
    thin: np.ndarray  # (n,) bool: grey erosion (never with thick)
    alpha: np.ndarray  # (n, 1, 1) stroke change blend weight
    blur: np.ndarray  # (n,) bool
    gamma: np.ndarray  # (n, 1)
    gain: np.ndarray  # (n, 1)

    def rows(self, a: int, b: int) -> Draws:
        """The draws of images a..b-1 (each image's changes depend on its own draws only)."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        kw = {k: None if v is None else v[a:b] for k, v in kw.items()}
        if self.grid is not None:
            first = int(self.warp[:a].sum())
            kw["grid"] = self.grid[first : first + int(self.warp[a:b].sum())]
        return Draws(**kw)


def draw(n: int, rng: np.random.Generator, cfg: AugmentConfig = DEFAULT) -> Draws:
    """Draw the random numbers for a batch of n images (see Draws)."""
    theta = np.deg2rad(rng.uniform(-cfg.max_rotation, cfg.max_rotation, n))
    zoom = rng.uniform(cfg.scale[0], cfg.scale[1], n)
    shear = rng.uniform(-cfg.max_shear, cfg.max_shear, n)
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, (n, 2))
    warp = grid = None
    if cfg.p_elastic > 0:
        warp = rng.random(n) < cfg.p_elastic
        if warp.any():
            grid = rng.uniform(-cfg.elastic, cfg.elastic,
                               (int(warp.sum()), 2, 4, 4)).astype(np.float32)
    u = rng.random(n)
    thick = u < cfg.p_thicken
    thin = (u >= cfg.p_thicken) & (u < cfg.p_thicken + cfg.p_thin)
    alpha = rng.uniform(0.5, 1.0, (n, 1, 1)).astype(np.float32)
    blur = rng.random(n) < cfg.p_blur
    gamma = rng.uniform(cfg.gamma[0], cfg.gamma[1], (n, 1)).astype(np.float32)
    gain = rng.uniform(cfg.gain[0], cfg.gain[1], (n, 1)).astype(np.float32)
    return Draws(theta, zoom, shear, shift, warp, grid, thick, thin, alpha, blur, gamma,
                 gain)


def _affine(x: np.ndarray, d: Draws) -> np.ndarray:
    """Bilinear warp of x (N,H,W) about the image centre; outside pixels are background (0)."""
    n, h, w = x.shape
    theta, zoom, shear, shift = d.theta, d.zoom, d.shear, d.shift
    cos, sin = np.cos(theta), np.sin(theta)
    # Forward map on (y, x) offsets from the centre: zoom * rotation @ x-shear. Sampling needs
    # its inverse (for each output pixel, where it comes from).
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)  # (N, 2, 2)
    shr = np.zeros((n, 2, 2))
    shr[:, 0, 0] = shr[:, 1, 1] = 1.0
    shr[:, 1, 0] = shear  # x += shear * y
    fwd = zoom[:, None, None] * (rot @ shr)
    inv = np.linalg.inv(fwd).astype(np.float32)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dst = np.stack([ys.ravel() - cy, xs.ravel() - cx])  # (2, H*W)
    # src = inv @ (dst - shift) + centre, for each image: (N, 2, H*W)
    src = inv @ (dst[None] - shift.astype(np.float32)[:, :, None])
    ph, pw = h + 2, w + 2
    # +1: index into the zero-padded image; clipping far-away points lands them on the zero pad.
    sy = np.clip(src[:, 0] + (cy + 1.0), 0.0, ph - 1.001)
    sx = np.clip(src[:, 1] + (cx + 1.0), 0.0, pw - 1.001)
    return _bilinear(x, sy, sx).reshape(n, h, w)


def _bilinear(x: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Bilinear samples of x (N,H,W) zero-padded by 1 px, at rows sy / columns sx of the padded
    image (shape (N, ...), already clipped inside it); returns an array shaped like sy."""
    n, h, w = x.shape
    ph, pw = h + 2, w + 2
    y0 = sy.astype(np.int32)
    x0 = sx.astype(np.int32)
    fy = sy - y0
    fx = sx - x0
    flat = np.pad(x, ((0, 0), (1, 1), (1, 1))).reshape(-1)
    i00 = y0 * pw + x0
    i00 += (np.arange(n, dtype=np.int32) * (ph * pw)).reshape((n,) + (1,) * (sy.ndim - 1))
    v00 = flat.take(i00)
    v01 = flat.take(i00 + 1)
    v10 = flat.take(i00 + pw)
    v11 = flat.take(i00 + (pw + 1))
    top = v00 + (v01 - v00) * fx
    bot = v10 + (v11 - v10) * fx
    return top + (bot - top) * fy


def _elastic(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Warp x (N,H,W) by a smooth random displacement field: a 4x4 grid of random offsets
    (grid (N,2,4,4), px in y and x) interpolated bilinearly to every pixel; bilinear sampling,
    outside pixels are background (0)."""
    n, h, w = x.shape
    # Bilinear upsampling of the 4x4 grid to HxW: separable interpolation matrices.
    def interp(size: int) -> np.ndarray:
        pos = np.linspace(0.0, 3.0, size, dtype=np.float32)
        i0 = np.minimum(pos.astype(np.int32), 2)
        f = pos - i0
        m = np.zeros((size, 4), np.float32)
        m[np.arange(size), i0] = 1 - f
        m[np.arange(size), i0 + 1] += f
        return m

    field = np.einsum("hi,nciw,vw->nchv", interp(h), grid, interp(w))  # (N, 2, H, W)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ph, pw = h + 2, w + 2
    sy = np.clip(ys + field[:, 0] + 1.0, 0.0, ph - 1.001)
    sx = np.clip(xs + field[:, 1] + 1.0, 0.0, pw - 1.001)
    return _bilinear(x, sy, sx)


def _cross(x: np.ndarray, op) -> np.ndarray:
    """Grey morphology with a 3x3 cross: op (np.maximum or np.minimum) over each pixel's
    4-neighbours."""
    pad_value = 0.0 if op is np.maximum else 1.0
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=pad_value)
    out = op(p[:, 1:-1, 1:-1], p[:, :-2, 1:-1])
    out = op(out, p[:, 2:, 1:-1])
    out = op(out, p[:, 1:-1, :-2])
    return op(out, p[:, 1:-1, 2:])


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable 3x3 binomial blur ([1, 2, 1] / 4 per axis), zero outside."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    v = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25
    return (v[:, :, :-2] + 2 * v[:, :, 1:-1] + v[:, :, 2:]) * 0.25


class Augmenter:
    """`augment` with a fixed AugmentConfig, as fn(images, rng); `draw` and `apply` are its two
    halves, which trainer.train uses to draw a whole epoch's random numbers in order and then
    apply them to the batches on several threads."""

    def __init__(self, cfg: AugmentConfig = DEFAULT) -> None:
        self.cfg = cfg

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return augment(images, rng, self.cfg)

    def draw(self, n: int, rng: np.random.Generator) -> Draws:
        return draw(n, rng, self.cfg)

    def apply(self, images: np.ndarray, d: Draws) -> np.ndarray:
        return apply(images, d)


def augment(images: np.ndarray, rng: np.random.Generator,
            cfg: AugmentConfig = DEFAULT) -> np.ndarray:
    """Randomly perturb a batch of digits: apply(images, draw(len(images), rng, cfg)).

    Args:
        images: float32 (N, 28, 28, 1) (or (N, 28, 28)) in [0, 1], ink bright on 0 background.
        rng: numpy Generator; the same seed gives the same batch.
        cfg: ranges (AugmentConfig).

    Returns:
        float32 array of the input's shape, values in [0, 1].
    """
    return apply(images, draw(len(images), rng, cfg))


def apply(images: np.ndarray, d: Draws) -> np.ndarray:
    """The batch `augment` makes of `images` from the random numbers `d` (draw(len(images)))."""
    x = np.asarray(images, dtype=np.float32)
    shape = x.shape
    x = x.reshape(shape[0], shape[1], shape[2])
    n = len(x)
    if n == 0:
        return x.reshape(shape)
    if n > CHUNK:
        return np.concatenate([_apply(x[a : a + CHUNK], d.rows(a, a + CHUNK))
                               for a in range(0, n, CHUNK)]).reshape(shape)
    return _apply(x, d).reshape(shape)


def _apply(x: np.ndarray, d: Draws) -> np.ndarray:
    """apply() on at most CHUNK images x (N,H,W); returns float32 (N,H,W)."""
    n, h, w = x.shape
    x = _affine(x, d)
    if d.grid is not None:
        x[d.warp] = _elastic(x[d.warp], d.grid)

    # Stroke width: dilation or erosion (exclusive), softened by blending with the original.
    thick, thin, alpha = d.thick, d.thin, d.alpha
    if thick.any():
        x[thick] = x[thick] + alpha[thick] * (_cross(x[thick], np.maximum) - x[thick])
    if thin.any():
        x[thin] = x[thin] + alpha[thin] * (_cross(x[thin], np.minimum) - x[thin])

    if d.blur.any():
        x[d.blur] = _blur(x[d.blur])

    # Intensity: normalise each image's peak to 1 (as trainer.images does to photos), then
    # reshape the ink profile with gamma and scale the peak by gain. Done through a 256-level
    # lookup table per image (the model's input is 8-bit anyway): 4x cheaper than np.power.
    peak = x.reshape(n, -1).max(axis=1)
    scale = (255.0 / np.maximum(peak, 1e-6)).astype(np.float32)
    levels = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    lut = d.gain * np.power(levels[None, :], d.gamma)  # (N, 256)
    idx = x.reshape(n, -1) * scale[:, None]
    np.clip(idx, 0.0, 255.0, out=idx)
    idx = (idx + 0.5).astype(np.int32)
    idx += (np.arange(n, dtype=np.int32) * 256)[:, None]
    x = lut.reshape(-1).take(idx)
    return x.astype(np.float32, copy=False).reshape(n, h, w)
