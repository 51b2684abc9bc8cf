"""A photo-like digit set: typeset digits rendered like phone photos of a digit on paper.

Each image is one digit drawn with a font found on the machine (Debian's fonts under
/usr/share/fonts, e.g. the DejaVu family every Debian image has), varied in size, weight (stroke),
rotation and perspective, in dark ink on uneven light paper (a brightness gradient plus
low-frequency blotches), with sensor noise, blur and sometimes JPEG compression. The images are
written as files named `<label>_<index>.png|.jpg`, so they go through `trainer.images` exactly
like a user's photos. The set is deterministic for a given seed and font list.

It is not handwriting: it measures how a model copes with the photo pipeline (lighting, noise,
blur, framing, stroke width) and a shift in digit style, never MNIST alone.
"""

from __future__ import annotations

import glob
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from nanocore.errors import UserError

log = logging.getLogger(__name__)

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"))
# Fonts whose digits are not digits (symbols, dingbats) or that lack them.
_EXCLUDE = ("math", "symbol", "dingbat", "emoji", "wingding")
_CANVAS = 112  # px, the side of a rendered "photo"


def find_fonts(dirs: tuple[str, ...] = FONT_DIRS) -> list[str]:
    """TrueType/OpenType files that can render the digits 0-9, sorted (deterministic order)."""
    found = []
    for d in dirs:
        for ext in ("ttf", "otf", "TTF", "OTF"):
            found.extend(glob.glob(os.path.join(d, "**", f"*.{ext}"), recursive=True))
    fonts = []
    for path in sorted(set(found)):
        if any(word in os.path.basename(path).lower() for word in _EXCLUDE):
            continue
        try:
            font = ImageFont.truetype(path, 24)
            if all(font.getbbox(str(d))[2] > 0 for d in range(10)):
                fonts.append(path)
        except OSError:
            continue
    return fonts


def _paper(rng: np.random.Generator, side: int) -> np.ndarray:
    """Uneven light paper, float (side, side) in [0,1]: tone, gradient, low-frequency blotches."""
    base = rng.uniform(0.62, 0.95)
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(0.0, 0.35)
    coarse = rng.normal(0, 1, (4, 4)).astype(np.float32)
    coarse_img = Image.fromarray(coarse, mode="F")
    blot = np.asarray(coarse_img.resize((side, side), Image.Resampling.BICUBIC))
    blot = blot / (np.abs(blot).max() + 1e-6) * rng.uniform(0.0, 0.08)
    # Vignetting, as a phone camera gives.
    vign = 1.0 - rng.uniform(0.0, 0.25) * (xx**2 + yy**2) * 2
    return np.clip((base + grad + blot) * vign, 0.0, 1.0)


def _glyph(rng: np.random.Generator, digit: int, font_path: str | None, side: int) -> np.ndarray:
    """Ink coverage float (side, side) in [0,1] for one digit: sized, bold, rotated, warped."""
    size = int(rng.uniform(0.45, 0.75) * side)
    stroke = int(rng.choice([0, 0, 0, 1, 2, 3]))
    font = (ImageFont.truetype(font_path, size) if font_path
            else ImageFont.load_default(size=size))
    layer = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(layer)
    text = str(digit)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    x = (side - (right - left)) / 2 - left + rng.uniform(-0.12, 0.12) * side
    y = (side - (bottom - top)) / 2 - top + rng.uniform(-0.12, 0.12) * side
    draw.text((x, y), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    layer = layer.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BICUBIC,
                         center=(side / 2, side / 2))
    # Perspective-ish: the unit square's corners moved by up to 8 % of the side (QUAD warp).
    j = rng.uniform(-0.08, 0.08, 8) * side
    quad = (0 + j[0], 0 + j[1], 0 + j[2], side + j[3], side + j[4], side + j[5], side + j[6],
            0 + j[7])
    layer = layer.transform((side, side), Image.Transform.QUAD, quad,
                            resample=Image.Resampling.BICUBIC)
    return np.asarray(layer, dtype=np.float32) / 255.0


def render_photo(digit: int, rng: np.random.Generator, font_path: str | None,
                 side: int = _CANVAS) -> Image.Image:
    """One photo-like grayscale image (mode "L", side x side) of `digit`, dark ink on paper."""
    paper = _paper(rng, side)
    cover = _glyph(rng, digit, font_path, side)
    ink = rng.uniform(0.05, 0.35)  # ink brightness (pencil is lighter than a marker)
    img = paper * (1 - cover) + ink * cover * paper / max(paper.mean(), 1e-3)
    pil = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8))
    radius = rng.uniform(0.0, 1.6)
    if radius > 0.3:
        pil = pil.filter(ImageFilter.GaussianBlur(radius))
    noisy = np.asarray(pil, dtype=np.float32) + rng.normal(0, rng.uniform(0, 10), (side, side))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_set(out_dir: str | Path, per_class: int = 30, seed: int = 0,
             fonts: list[str] | None = None) -> list[Path]:
    """Write per_class photos of each digit 0-9 to out_dir as `<label>_<nnnnn>.{png,jpg}`.

    Fonts are cycled; about a third of the files are JPEG (quality 55-90). Returns the paths.
    Raises UserError when out_dir cannot be written.
    """
    fonts = find_fonts() if fonts is None else fonts
    if not fonts:
        log.warning("no TrueType fonts found under %s; using Pillow's built-in font",
                    ", ".join(FONT_DIRS))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}") from None
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(per_class * 10):
        digit = i % 10
        font = fonts[(i // 10) % len(fonts)] if fonts else None
        img = render_photo(digit, rng, font)
        if rng.random() < 0.33:
            path = out / f"{digit}_{i:05d}.jpg"
            img.save(path, quality=int(rng.integers(55, 91)))
        else:
            path = out / f"{digit}_{i:05d}.png"
            img.save(path)
        paths.append(path)
    log.info("wrote %d synthetic photos with %d fonts to %s", len(paths), len(fonts), out)
    return paths


def load_set(cache_dir: str | Path, per_class: int = 30, seed: int = 0):
    """The synthetic set preprocessed by trainer.images (a `Folder`), generated once per
    (per_class, seed, fonts) into cache_dir/synth-<per_class>-<seed>-<nfonts>/."""
    from trainer.images import load_folder

    fonts = find_fonts()
    d = Path(cache_dir) / f"synth-{per_class}-{seed}-{len(fonts)}"
    marker = d / ".complete"
    if not marker.exists():
        make_set(d, per_class=per_class, seed=seed, fonts=fonts)
        marker.write_text("\n".join(fonts) + "\n")
    return load_folder(d)
