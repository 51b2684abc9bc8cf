"""A user's digit photos, preprocessed the MNIST way, and a contact sheet of what the model saw.

MNIST digits are light ink on a black background, the ink's bounding box scaled to fit 20x20
pixels (keeping the aspect ratio, anti-aliased), then placed in a 28x28 frame so that the ink's
centre of mass is at the centre. `preprocess` does the same to a photo of dark ink on paper:

1. grayscale (EXIF rotation applied), working copy at most `_WORK_SIDE` pixels on a side;
2. decide whether the ink is darker than the paper (`_dark_ink`: the longer tail once the
   light's slow changes are blurred away);
3. remove uneven lighting. With step "flatten" (`trainer.photo_clean`) and dark ink: divide the
   photo by its paper (the grey closing: strokes filled in, shadows kept) and take the ink's
   contrast 1 - photo / paper, the same in a shadow as in the light; with light ink, or
   without "flatten": invert dark ink, fit a smooth quadratic background surface robustly (ink
   pixels are outliers above it) and subtract it, then ("flatten") subtract the grey opening
   of what is left. "flatten" also smooths sensor noise and takes the paper's noise from the
   image's darker quarter; step "lines" subtracts ruled and squared paper lines (at least 0.8
   of the side long, straight, tilted by up to 0.15, thinner than a stroke); then what is
   within the paper's noise is zeroed; step "pieces" drops the connected pieces of
   ink that touch the border or are specks;
4. deskew: shear the ink so that its second moments show no slant (italic fonts, slanted hands);
5. stroke width: thicken hairlines and thin bold strokes (grey dilation / erosion) until their
   width, once fitted, lies in MNIST's usual band (`_STROKE`);
6. crop to the ink (a mass-quantile box, so a few specks do not widen it), scale to fit 20x20,
   stretch to a full 0..255 range, centre by centre of mass in 28x28.

Steps 4 and 5 took the committed model from 0.972 to 0.985 on the synthetic photo set (seed 0,
100 per class) and leave MNIST test digits classified as before (README; the images tests).
"flatten", "lines" and "pieces" were developed on the widened set's seeds 1 and 2
(tools/photo_misses.py; README has the figures) and leave MNIST test digits, inverted to dark
ink on white, classified as before.

Labels come from the file name prefix (`3_anything.png`) or a folder per digit (`3/any.png`).
Files that cannot be used are skipped with a one-line reason; the run goes on.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps, UnidentifiedImageError

from nanocore.errors import UserError
from trainer.photo_clean import box_blur, flatten, flatten_paper, keep_digit, remove_lines

log = logging.getLogger(__name__)

# GIF counts when it holds one frame (a still image saved as GIF); an animated GIF is skipped,
# since which of its frames is "the digit" is not ours to guess.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_WORK_SIDE = 192  # px; photos are reduced to this before processing (the result is 20x20 anyway)
_FIT = 20  # MNIST: the digit's box is scaled to fit 20x20 ...
_FRAME = 28  # ... inside a 28x28 frame
_LABEL_RE = re.compile(r"^([0-9])(?:[_\-. ]|$)")
# px in the 28x28 frame: strokes thinner or thicker than this (2 * area / perimeter at 0.5) are
# brought to the nearest bound. MNIST's widths: 5 % 1.2, median 1.8, 95 % 2.9 (test images 0-499);
# the narrower band below was the best of those tried on the synthetic set (see README).
_STROKE = (1.5, 2.4)
_MAX_SKEW = 0.6  # largest shear deskew applies (px per row)
_MIN_PEAK = 0.08  # the ink must stand this far (0..1) above the paper ...
# ... and, dark ink divided by its paper (step "flatten"), be this much darker than the paper:
# 0.08 of the full scale was 0.08-0.13 of the paper's level on light to grey paper, and blank
# sheets' blotches, grain and line remains reach 0.08-0.16 of it.
_MIN_CONTRAST = 0.12
_NOISE_K = 3.0  # ink starts this many noise sigmas above the paper
_LIGHT_INK = 1.4  # light ink on a dark ground: the bright tail this many times the dark one
STEPS = frozenset({"deskew", "stroke", "flatten", "lines", "pieces"})


class NoInkError(ValueError):
    """The image holds nothing that stands out from its background."""


@dataclass(frozen=True)
class Folder:
    """Preprocessed images of a folder.

    images: uint8 (N, 28, 28), 0 = background; labels: int64 (N,) digits; names: N paths relative
    to the folder; skipped: (relative name, one-line reason) for every image file not used.
    """

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def label_from_name(rel: Path) -> int | None:
    """Digit from `3_x.png` (file name prefix) or `3/x.png` (parent folder), else None."""
    m = _LABEL_RE.match(rel.name)
    if m:
        return int(m.group(1))
    if len(rel.parts) >= 2 and re.fullmatch(r"[0-9]", rel.parts[-2]):
        return int(rel.parts[-2])
    return None


def _to_gray(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # A transparent background counts as white paper.
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    if img.mode.startswith("I") or img.mode == "F":
        # 16/32-bit grayscale (e.g. 16-bit PNG scans): convert("L") would clip at 255.
        a = np.asarray(img, dtype=np.float32)
        full = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        if img.mode == "F" and a.max() <= 1.0:
            full = 1.0
        gray = Image.fromarray(np.clip(a / full, 0.0, 1.0).astype(np.float32), mode="F")
    else:
        gray = img.convert("L")
    scale = _WORK_SIDE / max(gray.size)
    if scale < 1:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX)  # area average keeps thin strokes
    a = np.asarray(gray, dtype=np.float32)
    return a if gray.mode == "F" else a / 255.0


def _dark_ink(x: np.ndarray) -> bool:
    """Whether the ink is darker than the paper: the ink is thin strokes, so once the light's
    slow changes are taken away (x minus its blur over a quarter of the image's side), it is
    the longer of the two tails. Photos of a digit are nearly always dark ink on paper, so the
    image is taken for light ink on a dark ground only when its bright tail is clearly the
    longer one, `_LIGHT_INK` times the dark one. (MNIST test digits, light on black, have a
    bright tail at least 1.5 times longer; shadows, noise and faint ink can make the tails of
    a dark-ink photo nearly even.)

    The blur is what a shadow needs: a shadow over part of the sheet makes the lit paper a
    long bright tail of x itself (the previous test, on x minus its median, took a third of
    the shadowed photos of the synthetic set for light ink on dark paper), while x minus its
    blur has a shadow's edge as much above as below 0. A fixed cut on the border's level
    (> 0.5: light paper) took grey paper in dim light, or a vignetted border, for a black
    background."""
    detail = x - box_blur(x, round(max(x.shape) / 4))
    lo, hi = np.percentile(detail, [0.5, 99.5])
    return float(hi) < _LIGHT_INK * -float(lo)


def _background(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Smooth background under bright ink: a quadratic surface fitted with ink as outliers.

    Returns (surface like x, noise sigma of the background pixels).
    """
    h, w = x.shape
    step = max(1, int(np.ceil(np.sqrt(h * w / 4096))))  # fit on <= ~4k samples
    yy, xx = np.mgrid[0:h:step, 0:w:step]
    v = x[::step, ::step].ravel()
    u = (xx.ravel() / max(w - 1, 1)) * 2 - 1
    t = (yy.ravel() / max(h - 1, 1)) * 2 - 1
    design = np.stack([np.ones_like(u), u, t, u * u, u * t, t * t], axis=1)
    # Start from the darker 40 %: paper after inversion, even when the digit fills the frame.
    keep = v <= np.percentile(v, 40)
    coef = np.zeros(6)
    sigma = 0.0
    for _ in range(5):
        if keep.sum() < 6:
            break
        # Least squares by the 6x6 normal equations (columns bounded in [-1, 1]); lstsq on
        # the ~4k x 6 design cost ~0.7 ms a call, on the 6x6 system microseconds, and it still
        # copes with a rank-deficient fit (an image 2 px high: t * t equals the constant).
        a = design[keep]
        coef, *_ = np.linalg.lstsq(a.T @ a, a.T @ v[keep], rcond=None)
        resid = v - design @ coef
        sigma = float(1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        # Ink is bright after inversion: drop what is clearly above the surface.
        new_keep = resid < max(2.5 * sigma, 0.02)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    ys, xs = np.mgrid[0:h, 0:w]
    u = (xs / max(w - 1, 1)) * 2 - 1
    t = (ys / max(h - 1, 1)) * 2 - 1
    surf = coef[0] + coef[1] * u + coef[2] * t + coef[3] * u * u + coef[4] * u * t + coef[5] * t * t
    return surf.astype(np.float32), sigma


def _mass_box(ink: np.ndarray, tail: float = 0.002) -> tuple[int, int, int, int]:
    """Rows/cols [r0, r1) x [c0, c1) holding all but `tail` of the ink mass on each side."""

    def span(profile: np.ndarray) -> tuple[int, int]:
        c = np.cumsum(profile) / profile.sum()
        lo = int(np.searchsorted(c, tail, side="right"))
        hi = int(np.searchsorted(c, 1 - tail, side="left")) + 1
        return lo, max(hi, lo + 1)

    r0, r1 = span(ink.sum(axis=1))
    c0, c1 = span(ink.sum(axis=0))
    return r0, r1, c0, c1


def _fit_box(crop: np.ndarray) -> np.ndarray:
    h, w = crop.shape
    scale = _FIT / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(np.clip(crop * 255.0, 0, 255).astype(np.uint8))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    return np.asarray(img.resize(size, method), dtype=np.float32) / 255.0


def _centre(small: np.ndarray) -> np.ndarray:
    """Place `small` (<= 20x20) in a 28x28 frame with its centre of mass at the centre."""
    h, w = small.shape
    ys, xs = np.mgrid[0:h, 0:w]
    mass = small.sum()
    cy = float((ys * small).sum() / mass)
    cx = float((xs * small).sum() / mass)
    # Top-left corner that puts the centre of mass on pixel centre 13.5 (MNIST's convention of
    # integer shifts), clamped so the whole box stays inside the frame.
    top = int(np.clip(round(13.5 - cy), 0, _FRAME - h))
    left = int(np.clip(round(13.5 - cx), 0, _FRAME - w))
    frame = np.zeros((_FRAME, _FRAME), np.float32)
    frame[top:top + h, left:left + w] = small
    return frame


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width (px) of a binary ink mask: 2 * area / perimeter (a stroke of length L
    and width w has area L*w and perimeter about 2L; perimeter counts 4-neighbour pixel edges)."""
    m = mask.astype(np.int8)
    perimeter = np.abs(np.diff(m, axis=0)).sum() + np.abs(np.diff(m, axis=1)).sum()
    perimeter += m[0].sum() + m[-1].sum() + m[:, 0].sum() + m[:, -1].sum()
    return 2.0 * float(m.sum()) / max(float(perimeter), 1.0)


def _normalise_stroke(ink: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Thicken or thin the ink (float, work resolution) so that its strokes come out
    within `_STROKE` px once its box is fitted to 20x20 (bold photo strokes, hairline fonts).

    Grey dilation (MaxFilter) or erosion (MinFilter) with a square of side 2r+1 changes a
    stroke's width by 2r work pixels; erosion never takes more than a third of the width.
    """
    r0, r1, c0, c1 = box
    scale = _FIT / max(r1 - r0, c1 - c0)  # output px per work px
    width = _stroke_width(ink > 0.5)
    if width <= 0:
        return ink
    lo, hi = _STROKE
    target = min(max(width * scale, lo), hi)
    radius = round((target / scale - width) / 2)
    radius = max(radius, -int(width / 3))
    if radius == 0:
        return ink
    img = Image.fromarray(np.clip(ink * 255.0, 0, 255).astype(np.uint8))
    if radius > 0:
        img = Image.fromarray(np.pad(np.asarray(img), radius))  # room to grow at the edges
        img = img.filter(ImageFilter.MaxFilter(2 * radius + 1))
    else:
        img = img.filter(ImageFilter.MinFilter(-2 * radius + 1))
    return np.asarray(img, dtype=np.float32) / 255.0


def _deskew(ink: np.ndarray) -> np.ndarray:
    """Shear the ink (float, work resolution) horizontally so that its second moments have no
    slant (mu11 = 0), about its centre of mass; the shear is capped at `_MAX_SKEW`."""
    h, w = ink.shape
    ys, xs = np.mgrid[0:h, 0:w]
    mass = float(ink.sum())
    cy = float((ys * ink).sum()) / mass
    cx = float((xs * ink).sum()) / mass
    mu11 = float(((ys - cy) * (xs - cx) * ink).sum()) / mass
    mu02 = float(((ys - cy) ** 2 * ink).sum()) / mass
    skew = float(np.clip(mu11 / max(mu02, 1e-6), -_MAX_SKEW, _MAX_SKEW))
    if abs(skew) < 0.02:
        return ink
    pad = int(np.ceil(abs(skew) * h / 2)) + 1
    img = Image.fromarray(np.pad(ink, ((0, 0), (pad, pad))).astype(np.float32), mode="F")
    # Output (x, y) samples input (x + skew * (y - cy), y): x-offsets grow with distance
    # below the centre of mass, undoing a lean of `skew` px per row.
    data = (1.0, skew, -skew * cy, 0.0, 1.0, 0.0)
    out = img.transform(img.size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def preprocess_array(gray: np.ndarray, steps: frozenset[str] | None = None) -> np.ndarray:
    """MNIST-style 28x28 uint8 from a grayscale float image in [0, 1] (H, W), any polarity.

    steps: the optional steps to apply, a subset of `STEPS` ("flatten", "lines", "pieces",
    "deskew", "stroke"; None: all), so that each one's effect can be measured on its own;
    {"deskew", "stroke"} is the pipeline before flattening, exactly.
    Raises NoInkError when nothing stands out from the background.
    """
    steps = STEPS if steps is None else steps
    x = np.asarray(gray, dtype=np.float32)
    if x.ndim != 2 or min(x.shape) < 2:
        raise NoInkError(f"image too small ({'x'.join(map(str, x.shape))} px)")
    dark = _dark_ink(x)
    min_peak = _MIN_PEAK
    if dark and "flatten" in steps:
        ink, sigma = flatten_paper(x)  # the lighting divided out, ink bright
        noise_k, min_peak = _NOISE_K, _MIN_CONTRAST
    else:
        if dark:
            x = 1.0 - x  # dark ink on paper -> MNIST polarity
        surf, sigma = _background(x)
        ink = x - surf
        noise_k = 4.0
        if "flatten" in steps:
            ink, sigma = flatten(ink)
            noise_k = _NOISE_K
    if "lines" in steps:
        ink = remove_lines(ink)
    peak = float(np.percentile(ink, 99.8))
    floor = max(noise_k * sigma, 0.15 * peak, 0.02)
    if peak <= floor or peak < min_peak:
        raise NoInkError("no ink found (blank or too faint)")
    ink = np.clip((ink - floor) / (peak - floor), 0.0, 1.0)
    if ink.sum() <= 0:
        raise NoInkError("no ink found (blank or too faint)")
    if "pieces" in steps:
        ink = keep_digit(ink)
    if "deskew" in steps:
        ink = _deskew(ink)
    if "stroke" in steps:
        ink = _normalise_stroke(ink, _mass_box(ink))
    r0, r1, c0, c1 = _mass_box(ink)
    small = _fit_box(ink[r0:r1, c0:c1])
    if small.max() <= 0:
        raise NoInkError("no ink found after cropping")
    small = small / small.max()  # MNIST strokes reach full white
    return np.clip(np.round(_centre(small) * 255.0), 0, 255).astype(np.uint8)


def load_image(path: str | Path) -> np.ndarray:
    """Read one PNG/JPEG/BMP and preprocess it to uint8 (28, 28).

    Raises UserError (one line) for an empty, unreadable, corrupt or blank file.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{path.name}: empty file (0 bytes)")
        with Image.open(path) as img:
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                raise UserError(f"{path.name}: animated image ({frames} frames): save the "
                                "digit as a single still image")
            img.load()  # decode now: a truncated file fails here, not later
            gray = _to_gray(img)
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(f"{path.name}: not a PNG/JPEG/BMP/GIF image") from None
    except Image.DecompressionBombError:
        raise UserError(f"{path.name}: image too large to decode safely") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise UserError(f"{path.name}: unreadable or corrupt image ({reason})") from None
    except (ValueError, SyntaxError) as exc:  # PIL plugins raise these for malformed headers
        raise UserError(f"{path.name}: corrupt image ({exc})") from None
    try:
        return preprocess_array(gray)
    except NoInkError as exc:
        raise UserError(f"{path.name}: {exc}") from None


def list_images(directory: str | Path) -> list[Path]:
    """Image files (by extension) in `directory` and its subfolders, sorted (see `scan_folder`
    for the entries that are not used)."""
    return scan_folder(directory)[0]


def _entry_problem(path: Path) -> str | None:
    """Why a folder entry cannot be an image file, or None when it is a candidate."""
    if path.name.startswith("."):
        return "hidden file"
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return "symbolic link loop"
        except OSError as exc:
            if exc.errno == 40:  # ELOOP
                return "symbolic link loop"
            return "broken symbolic link (its target does not exist)"
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        kind = path.suffix.lower() or "no extension"
        return f"not an image file ({kind}): PNG, JPEG, BMP or GIF"
    return None


def scan_folder(directory: str | Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every entry under `directory` (subfolders walked, symbolic links to folders not
    followed): (image files to use, sorted; [(relative name, reason)] for every other entry).
    Nothing is left out silently: hidden files, broken links, link loops and other file types
    each get a one-line reason."""
    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"{directory} is not a folder of images")
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for d in sorted(dirnames):
            if d.startswith(".") or (base / d).is_symlink():
                why = "hidden folder" if d.startswith(".") else "link to a folder (not followed)"
                skipped.append(((base / d).relative_to(root).as_posix(), why))
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and not (base / d).is_symlink()]
        for f in filenames:
            path = base / f
            why = _entry_problem(path)
            if why is None:
                files.append(path)
            else:
                skipped.append((path.relative_to(root).as_posix(), why))
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    skipped.sort()
    return files, skipped


def load_folder(directory: str | Path, require_label: bool = True) -> Folder:
    """Preprocess every PNG/JPEG/BMP/GIF (one frame) under `directory`.

    Any other entry (see `scan_folder`), and a file that is empty, corrupt, unreadable,
    animated, blank or (with require_label) has no label is skipped: it goes to
    `Folder.skipped` with a one-line reason and is logged; the rest go on.
    Unlabeled images get label -1 when require_label is False.
    """
    root = Path(directory)
    files, skipped = scan_folder(root)
    images, labels, names = [], [], []
    for path in files:
        rel = path.relative_to(root)
        name = rel.as_posix()
        label = label_from_name(rel)
        if label is None and require_label:
            skipped.append((name, "no label: name it like 3_photo.png or put it in a folder 3/"))
            continue
        try:
            img = load_image(path)
        except UserError as exc:
            msg = str(exc)
            skipped.append((name, msg.split(": ", 1)[1] if msg.startswith(path.name + ": ")
                            else msg))
            continue
        images.append(img)
        labels.append(-1 if label is None else label)
        names.append(name)
    for name, reason in skipped:
        log.warning("skipped %s: %s", name, reason)
    arr = np.stack(images) if images else np.zeros((0, _FRAME, _FRAME), np.uint8)
    return Folder(images=arr, labels=np.asarray(labels, dtype=np.int64), names=names,
                  skipped=skipped)


def contact_sheet(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray | None,
                  path: str | Path, cols: int = 10, zoom: int = 3,
                  second: np.ndarray | None = None) -> Path:
    """Write a PNG grid of the 28x28 images (uint8 (N,28,28)) the model saw.

    Under each image: `label>prediction` (green when right, red when wrong); `second` adds a
    second prediction row (e.g. float next to int8). Returns the path written.
    """
    n = len(images)
    cols = max(1, min(cols, n)) if n else 1
    rows = max(1, -(-n // cols))
    cell = _FRAME * zoom
    text_h = 12 if second is None else 24
    sheet = Image.new("RGB", (cols * (cell + 4) + 4, rows * (cell + text_h + 6) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = 4 + c * (cell + 4)
        y0 = 4 + r * (cell + text_h + 6)
        tile = Image.fromarray(np.asarray(images[i], np.uint8)).resize((cell, cell),
                                                                        Image.Resampling.NEAREST)
        sheet.paste(tile.convert("RGB"), (x0, y0))
        for k, pred in enumerate((predictions, second)):
            if pred is None:
                continue
            lab = int(labels[i])
            ok = lab == int(pred[i])
            text = f"{lab if lab >= 0 else '?'}>{int(pred[i])}"
            color = (0, 140, 0) if ok else ((200, 0, 0) if lab >= 0 else (60, 60, 60))
            draw.text((x0 + 1, y0 + cell + 1 + 12 * k), text, fill=color)
        if predictions is None:
            draw.text((x0 + 1, y0 + cell + 1), str(int(labels[i])), fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def predict_keras(model, images: np.ndarray) -> np.ndarray:
    """Float predictions (int64 (N,)) on uint8 (N,28,28) images; `model` is a keras.Model or the
    path of one saved by `trainer train`."""
    if isinstance(model, (str, Path)):
        from trainer.modelio import load_keras

        model = load_keras(model)
    if len(images) == 0:
        return np.zeros((0,), np.int64)
    x = images.astype(np.float32)[..., None] / 255.0
    return np.argmax(model.predict(x, verbose=0, batch_size=256), axis=1).astype(np.int64)


def predict_tflite(model_path: str | Path, images: np.ndarray) -> np.ndarray:
    """int8 predictions (int64 (N,)) through the TFLM reference interpreter."""
    from trainer.reference import Reference

    try:
        data = Path(model_path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {model_path}: {exc.strerror}") from None
    if len(images) == 0:
        return np.zeros((0,), np.int64)
    out = np.asarray(Reference(data).run(images)).reshape(len(images), -1)
    return np.argmax(out, axis=1).astype(np.int64)


def evaluate_folder(directory: str | Path, keras_model=None,
                    tflite_path: str | Path | None = None,
                    sheet: str | Path | None = None) -> dict:
    """Preprocess a folder and evaluate float (Keras) and/or int8 (TFLM reference) models.

    keras_model: a keras.Model or a saved model's path (None: no float evaluation).

    Returns a dict: `images`, `skipped` (count), `skipped_files` [(name, reason)],
    `float_accuracy` / `int8_accuracy` (None without that model or without labeled images),
    `rows` [(name, label, float_pred, int8_pred)], `sheet` (path or None).
    """
    if keras_model is None and tflite_path is None:
        raise UserError("give a model: --keras model.keras and/or --tflite model.tflite")
    folder = load_folder(directory)
    preds: dict[str, np.ndarray | None] = {"float": None, "int8": None}
    if keras_model is not None:
        preds["float"] = predict_keras(keras_model, folder.images)
    if tflite_path is not None:
        preds["int8"] = predict_tflite(tflite_path, folder.images)
    result: dict = {"images": len(folder.names), "skipped": len(folder.skipped),
                    "skipped_files": folder.skipped}
    labeled = folder.labels >= 0
    for kind, p in preds.items():
        ok = p is not None and labeled.any()
        result[f"{kind}_accuracy"] = float(np.mean(p[labeled] == folder.labels[labeled])) if ok \
            else None
    result["rows"] = [
        (folder.names[i], int(folder.labels[i]),
         None if preds["float"] is None else int(preds["float"][i]),
         None if preds["int8"] is None else int(preds["int8"][i]))
        for i in range(len(folder.names))
    ]
    result["sheet"] = None
    if sheet is not None:
        first = preds["int8"] if preds["int8"] is not None else preds["float"]
        other = preds["float"] if preds["int8"] is not None else None
        result["sheet"] = str(contact_sheet(folder.images, folder.labels, first, sheet,
                                            second=other))
    return result
