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


# Hand-drawn digit skeletons: strokes as control points in a unit box (x right, y down), drawn
# through a Catmull-Rom spline. Alternatives per digit are the common ways of writing it.
_SKELETONS: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [[[(0.5, 0.03), (0.18, 0.3), (0.2, 0.75), (0.5, 0.97), (0.8, 0.72), (0.82, 0.28),
          (0.5, 0.03), (0.3, 0.12)]]],
    1: [[[(0.55, 0.03), (0.48, 0.97)]], [[(0.3, 0.25), (0.58, 0.03), (0.52, 0.97)]]],
    2: [[[(0.15, 0.3), (0.35, 0.06), (0.65, 0.05), (0.82, 0.27), (0.65, 0.52), (0.35, 0.75),
          (0.1, 0.95), (0.5, 0.93), (0.9, 0.95)]]],
    3: [[[(0.15, 0.15), (0.5, 0.03), (0.82, 0.2), (0.72, 0.42), (0.42, 0.5), (0.8, 0.6),
          (0.85, 0.82), (0.5, 0.97), (0.12, 0.85)]]],
    4: [[[(0.3, 0.03), (0.12, 0.62), (0.9, 0.62)], [(0.7, 0.3), (0.68, 0.97)]],
        [[(0.68, 0.97), (0.68, 0.03), (0.1, 0.66), (0.92, 0.66)]]],
    5: [[[(0.85, 0.05), (0.3, 0.05), (0.22, 0.45), (0.52, 0.38), (0.82, 0.55), (0.8, 0.82),
          (0.5, 0.97), (0.15, 0.88)]]],
    6: [[[(0.75, 0.03), (0.42, 0.25), (0.2, 0.6), (0.26, 0.9), (0.52, 0.97), (0.78, 0.8),
          (0.72, 0.58), (0.48, 0.52), (0.22, 0.66)]]],
    7: [[[(0.1, 0.08), (0.9, 0.06), (0.6, 0.5), (0.42, 0.97)]],
        [[(0.1, 0.08), (0.9, 0.06), (0.6, 0.5), (0.42, 0.97)], [(0.35, 0.5), (0.8, 0.5)]]],
    8: [[[(0.52, 0.48), (0.22, 0.28), (0.5, 0.03), (0.78, 0.26), (0.5, 0.5), (0.18, 0.74),
          (0.5, 0.97), (0.82, 0.74), (0.52, 0.48)]]],
    9: [[[(0.8, 0.3), (0.5, 0.48), (0.22, 0.32), (0.38, 0.05), (0.68, 0.06), (0.8, 0.3),
          (0.72, 0.97)]]],
}


def _spline(points: np.ndarray, n: int) -> np.ndarray:
    """Catmull-Rom curve through `points` (K, 2), sampled at n points per segment."""
    if len(points) == 2:
        t = np.linspace(0, 1, n)[:, None]
        return points[0] * (1 - t) + points[1] * t
    ext = np.vstack([points[:1], points, points[-1:]])
    out = []
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        out.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (3 * p1 - p0 - 3 * p2 + p3) * t**3))
    out.append(points[-1:])
    return np.vstack(out)


def _pen_glyph(rng: np.random.Generator, digit: int, side: int) -> np.ndarray:
    """Ink coverage float (side, side) in [0,1] of a hand-drawn `digit`: one of its skeletons,
    control points jittered, slanted, squeezed, drawn with a round pen whose width varies along
    the stroke (pressure) and whose path wanders (a smoothed random walk)."""
    strokes = _SKELETONS[digit][int(rng.integers(len(_SKELETONS[digit])))]
    height = rng.uniform(0.45, 0.75) * side
    width = height * rng.uniform(0.55, 0.95)
    slant = rng.uniform(-0.35, 0.2)  # x shift per unit of height (negative: leans right)
    cx = side / 2 + rng.uniform(-0.1, 0.1) * side
    cy = side / 2 + rng.uniform(-0.1, 0.1) * side
    pen = height * rng.uniform(0.04, 0.14)
    sup = 4  # supersampling for anti-aliased edges
    layer = Image.new("L", (side * sup, side * sup), 0)
    draw = ImageDraw.Draw(layer)
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=np.float64) + rng.normal(0, 0.03, (len(stroke), 2))
        path = _spline(pts, 40)
        walk = np.cumsum(rng.normal(0, 0.004, path.shape), axis=0)
        path = path + walk - walk.mean(axis=0)
        x = cx + (path[:, 0] - 0.5) * width + slant * (0.5 - path[:, 1]) * height
        y = cy + (path[:, 1] - 0.5) * height
        press = 1 + 0.25 * np.sin(np.linspace(0, np.pi * rng.uniform(1, 3), len(x))
                                  + rng.uniform(0, np.pi))
        for xi, yi, pi in zip(x, y, press, strict=True):
            r = pen * pi * sup / 2
            draw.ellipse((xi * sup - r, yi * sup - r, xi * sup + r, yi * sup + r), fill=255)
    layer = layer.resize((side, side), Image.Resampling.BOX)
    return np.asarray(layer, dtype=np.float32) / 255.0


def _texture(rng: np.random.Generator, side: int, style: dict | None = None) -> np.ndarray:
    """Multiplicative paper texture float (side, side) around 1: plain, grain (fibres), ruled
    (notebook lines) or squared paper, chosen at random (its name goes to style["paper"])."""
    kind = str(rng.choice(["plain", "grain", "ruled", "grid"], p=[0.3, 0.3, 0.2, 0.2]))
    if style is not None:
        style["paper"] = kind
    tex = np.ones((side, side), np.float32)
    if kind == "grain":
        fine = rng.normal(0, 1, (side // 2, side // 2)).astype(np.float32)
        grain = np.asarray(Image.fromarray(fine, mode="F").resize((side, side)))
        tex -= rng.uniform(0.02, 0.06) * grain
    elif kind in ("ruled", "grid"):
        pitch = rng.uniform(0.12, 0.3) * side
        dark = rng.uniform(0.08, 0.25)  # blue/grey lines, seen in grayscale
        offset = rng.uniform(0, pitch)
        idx = np.arange(side)
        line = (((idx - offset) % pitch) < 1.2).astype(np.float32)
        tex -= dark * line[:, None]
        if kind == "grid":
            tex -= dark * line[None, :]
    return np.clip(tex, 0.5, 1.0)


def _perspective(img: Image.Image, rng: np.random.Generator, tilt: float) -> Image.Image:
    """The photo seen from a camera tilted off the paper's normal: a true perspective warp
    mapping the frame to a random quadrilateral inside it (corners moved inwards by up to
    `tilt` of the side), so that no pixel comes from outside the paper."""
    s = img.width
    src = np.array([[0, 0], [s, 0], [s, s], [0, s]], np.float64)
    src += rng.uniform(0, tilt * s, (4, 2)) * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    dst = np.array([[0, 0], [s, 0], [s, s], [0, s]], np.float64)
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.extend([u, v])
    coef = np.linalg.solve(np.asarray(a), np.asarray(b))
    return img.transform((s, s), Image.Transform.PERSPECTIVE, tuple(coef),
                         Image.Resampling.BICUBIC)


def render_wide(digit: int, rng: np.random.Generator, font_path: str | None,
                side: int = _CANVAS, style: dict | None = None) -> Image.Image:
    """One photo (mode "L", side x side) of `digit` in the widened style mix: the glyph is a
    font's (as `render_photo`) or a hand-drawn pen stroke (`_pen_glyph`), half each; paper with a
    texture (`_texture`), lighting gradient, blotches and vignette (`_paper`), sometimes a soft
    shadow; ink from marker-black to pencil-grey; defocus or motion blur; a camera tilt
    (`_perspective`); sensor noise.

    style: when given, filled with what was drawn ("glyph": "pen" or "font", "paper": the
    texture, "shadow": bool), for counting misses by kind; the random draws do not change.
    """
    style = {} if style is None else style
    paper = _paper(rng, side) * _texture(rng, side, style)
    style["shadow"] = shadow = bool(rng.random() < 0.3)
    if shadow:  # a soft shadow across part of the sheet (a hand or the phone)
        yy, xx = np.mgrid[0:side, 0:side] / (side - 1) - 0.5
        ang = rng.uniform(0, 2 * np.pi)
        edge = np.cos(ang) * xx + np.sin(ang) * yy - rng.uniform(-0.2, 0.4)
        paper = paper * (1 - rng.uniform(0.15, 0.4) / (1 + np.exp(-edge * rng.uniform(8, 30))))
    if rng.random() < 0.5 or not font_path:
        style["glyph"] = "pen"
        cover = _pen_glyph(rng, digit, side)
    else:
        style["glyph"] = "font"
        cover = _glyph(rng, digit, font_path, side)
    ink = rng.uniform(0.05, 0.5)
    img = paper * (1 - cover) + ink * cover * paper / max(paper.mean(), 1e-3)
    pil = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8))
    pil = _perspective(pil, rng, rng.uniform(0.0, 0.15))
    if rng.random() < 0.2:  # motion blur: the mean of copies shifted along a random direction
        a = np.asarray(pil, dtype=np.float32)
        length = int(rng.integers(2, 6))
        ang = rng.uniform(0, np.pi)
        shifts = [(round(k * np.sin(ang)), round(k * np.cos(ang))) for k in range(length)]
        a = np.mean([np.roll(a, sh, axis=(0, 1)) for sh in shifts], axis=0)
        pil = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    else:
        radius = rng.uniform(0.0, 1.8)
        if radius > 0.3:
            pil = pil.filter(ImageFilter.GaussianBlur(radius))
    noisy = np.asarray(pil, dtype=np.float32) + rng.normal(0, rng.uniform(0, 10), (side, side))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


KINDS = ("wide", "fonts")


def make_set(out_dir: str | Path, per_class: int = 30, seed: int = 0,
             fonts: list[str] | None = None, kind: str = "wide",
             styles: list[dict] | None = None) -> list[Path]:
    """Write per_class photos of each digit 0-9 to out_dir as `<label>_<nnnnn>.{png,jpg}`.

    kind "wide" (`render_wide`: fonts and hand-drawn pen strokes, paper textures, shadows,
    motion blur, camera tilt; about 40 % JPEG at quality 30-95) or "fonts" (`render_photo`, the
    first set: fonts only, about a third JPEG at quality 55-90; same files as before for a
    seed). Fonts are cycled. Returns the paths; `styles`, when given, gets one dict per path
    (kind "wide": `render_wide`'s style, plus "jpeg"; kind "fonts": {"glyph": "font"}).
    Raises UserError when out_dir cannot be written.
    """
    if kind not in KINDS:
        raise UserError(f"unknown synthetic set kind {kind!r}: one of {', '.join(KINDS)}")
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
        style: dict = {"glyph": "font"}
        if kind == "fonts":
            img = render_photo(digit, rng, font)
            jpeg, quality = rng.random() < 0.33, (55, 91)
        else:
            img = render_wide(digit, rng, font, style=style)
            jpeg, quality = rng.random() < 0.4, (30, 96)
        if styles is not None:
            styles.append({**style, "jpeg": bool(jpeg)})
        if jpeg:
            path = out / f"{digit}_{i:05d}.jpg"
            img.save(path, quality=int(rng.integers(*quality)))
        else:
            path = out / f"{digit}_{i:05d}.png"
            img.save(path)
        paths.append(path)
    log.info("wrote %d synthetic photos with %d fonts to %s", len(paths), len(fonts), out)
    return paths


def load_set(cache_dir: str | Path, per_class: int = 30, seed: int = 0, kind: str = "wide"):
    """The synthetic set preprocessed by trainer.images (a `Folder`), generated once per
    (kind, per_class, seed, fonts) into cache_dir/synth-[<kind>-]<per_class>-<seed>-<nfonts>/
    (the first set, kind "fonts", keeps its old folder name)."""
    from trainer.images import load_folder

    fonts = find_fonts()
    prefix = "synth-" if kind == "fonts" else f"synth-{kind}-"
    d = Path(cache_dir) / f"{prefix}{per_class}-{seed}-{len(fonts)}"
    # The marker sits beside the folder: inside it, load_folder would count it as a skipped
    # (hidden) file. Sets made before kept it inside; it is moved out.
    marker = d.with_name(d.name + ".complete")
    if (d / ".complete").exists():
        (d / ".complete").replace(marker)
    if not marker.exists():
        make_set(d, per_class=per_class, seed=seed, fonts=fonts, kind=kind)
        marker.write_text("\n".join(fonts) + "\n")
    return load_folder(d)
