"""Photo cleaning for trainer.images: the steps that make a photo of paper look like a dark
page with bright ink, before the MNIST-style crop and fit.

- `flatten_paper` (dark ink, the photo as taken): the ink's contrast against the paper, the
  grey closing of the photo (what a square wider than any stroke leaves: paper, shadows,
  blotches), so a shadow's edge is not ink and ink in a shadow is not fainter;
- `flatten` (bright ink, after a quadratic background): subtract the grey opening;
- both smooth sensor noise and take the paper's noise from below (`paper_level`);
- `remove_lines`: subtract ruled and squared paper lines (long, straight, thin);
- `keep_digit`: drop the connected pieces of ink that touch the border, and specks.

Pure numpy. Each step is tested on its own; trainer.images names
them as its optional STEPS "flatten", "lines" and "pieces".
"""

from __future__ import annotations

import numpy as np

# Paper lines (`remove_lines`), as fractions of the image's longer side: at least this long,
# thinner than this, and slopes (rows per column) up to this from horizontal or vertical.
_LINE_LEN = 0.8
_LINE_WIDTH = 0.03
_LINE_SLOPE = 0.15
_LINE_SIDE = 64  # px: lines are looked for on a copy max-pooled to at most this side
_SMOOTH_MIN = 64  # px: images at least this large (shorter side) get a 3x3 mean
_FLAT = 0.3  # the local background window (`_open_square`), a fraction of the longer side
_PIECE = 0.03  # pieces of ink lighter than this fraction of the heaviest piece are specks


def _border(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])


def run_min_max(x: np.ndarray, length: int, axis: int, op) -> np.ndarray:
    """Sliding `op` (np.minimum or np.maximum) of x over windows of `length` samples along
    `axis`, centred (the window of sample i is [i - length // 2, i - length // 2 + length));
    edges are padded with the edge value. Window sizes double (log2(length) array ops)."""
    if length <= 1:
        return x
    axis = axis % x.ndim
    n = x.shape[axis]

    def cut(a: np.ndarray, start: int, stop: int) -> np.ndarray:
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(start, stop)
        return a[tuple(idx)]

    lo = length // 2
    pad = np.concatenate([np.repeat(cut(x, 0, 1), lo, axis), x,
                          np.repeat(cut(x, n - 1, n), length - lo, axis)], axis=axis)
    acc = pad
    span = 1
    while span * 2 <= length:
        m = acc.shape[axis]
        acc = op(cut(acc, 0, m - span), cut(acc, span, m))
        span *= 2
    # acc[i] covers pad[i:i + span]; two overlapping windows cover pad[i:i + length].
    return op(cut(acc, 0, n), cut(acc, length - span, length - span + n))


def _open(x: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Grey opening (erosion then dilation) with a line of `length` px along `axis`: what
    remains is every structure at least `length` px long in that direction."""
    return run_min_max(run_min_max(x, length, axis, np.minimum), length, axis, np.maximum)


def _open_square(x: np.ndarray, side: int) -> np.ndarray:
    """Grey opening with a side x side square (separable): structures smaller than the square
    in either direction (ink strokes) are removed, wide areas (paper, shadows) kept. `side` is
    made odd, so the window is symmetric."""
    side |= 1
    ero = run_min_max(run_min_max(x, side, 0, np.minimum), side, 1, np.minimum)
    return run_min_max(run_min_max(ero, side, 0, np.maximum), side, 1, np.maximum)


def box_blur(x: np.ndarray, radius: int, passes: int = 2) -> np.ndarray:
    """Mean of x over (2 radius + 1)-pixel squares, applied `passes` times (two passes: a
    tent-shaped, near-Gaussian weighting); edges are padded with the edge value. Running sums,
    so the cost does not grow with the radius."""
    radius = max(1, int(radius))
    out = np.asarray(x, np.float32)
    for _ in range(passes):
        for axis in (0, 1):
            n = out.shape[axis]
            pad = [(radius + 1, radius) if a == axis else (0, 0) for a in range(2)]
            c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float64)
            hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
            lo = np.take(c, np.arange(n), axis=axis)
            out = ((hi - lo) / (2 * radius + 1)).astype(np.float32)
    return out


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 mean of x (edges repeated)."""
    p = np.pad(x, 1, mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0


def _shear_rows(x: np.ndarray, slopes: np.ndarray, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Copies of x (H, W), one per slope (S, H, W): column j shifted by
    sign * round(slope * (j - W/2)) rows (edge values fill in), so that a line of that slope
    becomes horizontal (sign 1); with x of shape (S, H, W) and sign -1, the shifts are undone.
    Also returns where the shifted rows fell outside x (bool, S, H, W)."""
    h, w = x.shape[-2:]
    shift = np.round(slopes[:, None] * (np.arange(w) - w / 2)).astype(int) * sign
    rows = np.arange(h)[None, :, None] + shift[:, None, :]
    outside = (rows < 0) | (rows >= h)
    src = np.broadcast_to(x, (len(slopes), h, w))
    return np.take_along_axis(src, np.clip(rows, 0, h - 1), axis=1), outside


def _long_along_rows(sheared: np.ndarray, outside: np.ndarray, length: int) -> np.ndarray:
    """Grey opening of `sheared` (S, H, W) with a line of `length` px along its rows (axis 2),
    where only the image counts: past the image's two ends the row is padded below its
    minimum, so the stem of a '1' that runs out of the frame is not long (an edge-repeating
    opening counted anything touching the frame's edge as long); where the shear moved a row
    out of the image (`outside`, True), the value is unknown and does not break a line, so a
    tilted line that leaves the frame through its top or bottom stays one."""
    lo, hi = float(sheared.min()), float(sheared.max()) + 1.0
    pad = ((0, 0), (0, 0), (length, length))
    x = np.pad(np.where(outside, hi, sheared), pad, mode="constant", constant_values=lo)
    ero = run_min_max(x, length, 2, np.minimum)
    ero = np.where(np.pad(outside, pad, mode="constant", constant_values=True), lo, ero)
    return run_min_max(ero, length, 2, np.maximum)[:, :, length:length + sheared.shape[2]]


def remove_lines(ink: np.ndarray) -> np.ndarray:
    """Subtract ruled and squared paper lines from bright-ink `ink` (float, background ~0).

    A paper line is long and straight (at least `_LINE_LEN` of the side long within the frame,
    near-horizontal or near-vertical, slopes up to `_LINE_SLOPE` for a tilted camera) and thin:
    of the long structures, only the part thinner than `_LINE_WIDTH` of the side (what an
    opening across the line removes) is subtracted, so a digit's own strokes, thicker than a
    printed line and never that long, stay. The lines are found on a copy max-pooled to at most
    `_LINE_SIDE` px (a line keeps its level), all slopes of one direction at once as one
    (S, H, W) array, and subtracted at full resolution. Horizontal and vertical lines add up: at
    a crossing of squared paper both darken the paper (the darker one alone left a dot).
    """
    h, w = ink.shape
    f = max(1, -(-max(h, w) // _LINE_SIDE))
    hp, wp = -(-h // f) * f, -(-w // f) * f
    small = np.pad(ink, ((0, hp - h), (0, wp - w)), mode="edge")
    small = small.reshape(hp // f, f, wp // f, f).max(axis=(1, 3))
    thick = max(3, round(_LINE_WIDTH * max(small.shape)))
    lines = np.zeros_like(small)
    for x, transposed in ((small, False), (small.T, True)):
        length = max(8, round(_LINE_LEN * x.shape[1]))
        step = 2.0 / length  # a slope error of this keeps a line within +-1 px over its length
        n = int(np.ceil(_LINE_SLOPE / step))
        slopes = np.linspace(-n * step, n * step, 2 * n + 1)
        long_ = _long_along_rows(*_shear_rows(x, slopes, 1), length)
        thin = _shear_rows(long_ - _open(long_, thick, 1), slopes, -1)[0].max(axis=0)
        lines = lines + (thin.T if transposed else thin)
    lines = np.repeat(np.repeat(lines, f, axis=0), f, axis=1)[:h, :w]
    return np.clip(ink - lines, 0.0, None)


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask: (labels int32 like mask, 0 = background,
    1..n; n). Runs of each row are joined to the overlapping runs of the row above."""
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    parent = [0]

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    prev: list[tuple[int, int, int]] = []
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    for r in range(h):
        starts = np.flatnonzero(edges[r] == 1)
        ends = np.flatnonzero(edges[r] == -1)
        cur = []
        j = 0
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            lab = 0
            while j < len(prev) and prev[j][1] < a:  # runs above ending left of this one
                j += 1
            k = j
            while k < len(prev) and prev[k][0] <= b:  # overlapping, diagonals included
                other = find(prev[k][2])
                if lab == 0:
                    lab = other
                elif other != lab:
                    parent[max(lab, other)] = min(lab, other)
                    lab = min(lab, other)
                k += 1
            if lab == 0:
                lab = len(parent)
                parent.append(lab)
            labels[r, a:b] = lab
            cur.append((a, b, lab))
        prev = cur
    roots = np.asarray([find(i) for i in range(len(parent))], np.int32)
    uniq, dense = np.unique(roots, return_inverse=True)
    return dense.astype(np.int32)[labels], len(uniq) - 1


def keep_digit(ink: np.ndarray) -> np.ndarray:
    """Zero the ink that is not the digit: of the connected pieces of ink (8-neighbours), drop
    those touching the image's border (a shadow's edge, the paper's edge, a line's remains) and
    specks lighter than `_PIECE` of the heaviest piece; everything else is kept (a digit drawn
    in two strokes, a stroke broken by faint ink). When every heavy piece touches the border
    (a digit cropped tight), nothing is dropped for touching it."""
    labels, n = components(ink > 0)
    if n <= 1:
        return ink
    mass = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=n + 1)
    border = np.zeros(n + 1, bool)
    border[_border(labels)] = True
    border[0] = True
    heavy = mass >= _PIECE * mass[1:].max()
    heavy[0] = False
    keep = heavy & ~border
    if not keep.any():
        keep = heavy
    return np.where(keep[labels], ink, 0.0).astype(ink.dtype)


def flatten_paper(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Bright ink over a flat, zero background from a photo of dark ink on paper as taken
    (x in [0, 1], not inverted): the ink's contrast 1 - x / paper, where the paper is x's grey
    closing with a square of `_FLAT` of the longer side (what is left once every dark stroke
    narrower than the square is filled in: the paper with its lighting, shadows included).

    Light multiplies: in a shadow the paper and the ink both darken by the same factor, so the
    ratio gives the same ink wherever it lies, where a difference (`flatten`) makes the ink in
    the shadow fainter than in the light. And the closing of a shadow's edge, a monotone ramp,
    is the edge itself, so no edge is left over as ink; the quadratic surface taken out first
    for `flatten` bent such a ramp into bumps, which the opening left as ink.
    Images of at least `_SMOOTH_MIN` px get a 3x3 mean. Returns (ink like x, noise sigma).
    """
    side = max(5, round(_FLAT * max(x.shape)))
    # Past the frame's edge the paper goes on as it was going (odd reflection: a vignette's or
    # a gradient's slope continues); repeating the edge value, the closing took the paper at
    # the edge for as bright as half a window inside it, and the darker rim of a vignetted
    # photo for ink. The reflection doubles a pixel's noise, so it is taken of a 3x3 mean, in
    # images of at least `_SMOOTH_MIN` px (in smaller ones the mean would darken the paper
    # between close strokes, which the closing then keeps).
    pad = side // 2 + 1
    src = box_blur(x, 1, passes=1) if min(x.shape) >= _SMOOTH_MIN else x
    wide = np.pad(src, pad, mode="reflect", reflect_type="odd")
    paper = -_open_square(-wide, side)[pad:pad + x.shape[0], pad:pad + x.shape[1]]
    return _smooth_from_paper(1.0 - x / np.maximum(paper, 1e-3))


def flatten(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Bright ink over a flat, zero background: x (bright ink, after the quadratic background
    surface) minus its grey opening with a square of `_FLAT` of the longer side, which follows
    what the surface cannot (a shadow's sharp edge, blotches) but not the strokes, narrower than
    the square. (The opening on the image before the surface did worse on dev seeds 1-2, with
    the polarity test and noise floor of then; dark ink now goes through `flatten_paper`.)

    Images of at least `_SMOOTH_MIN` px get a 3x3 mean (sensor noise down by 3, so that faint
    ink clears the noise floor). The opening follows the noise's troughs, so the paper sits a
    little above 0: its level and noise are taken again from the residual (the paper is most of
    the image). Returns (ink like x, noise sigma).
    """
    side = max(5, round(_FLAT * max(x.shape)))
    return _smooth_from_paper(x - _open_square(x, side))


def _smooth_from_paper(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """The end both flattenings share: a 3x3 mean in images of at least `_SMOOTH_MIN` px, then
    the paper's level taken out (`paper_level`). Returns (ink, noise sigma)."""
    if min(ink.shape) >= _SMOOTH_MIN:
        ink = _box3(ink)
    level, sigma = paper_level(ink)
    return ink - level, sigma


def paper_level(ink: np.ndarray) -> tuple[float, float]:
    """(level, noise sigma) of the paper in `ink` (bright ink over the paper), from the
    image's darker quarter only: p5 and p25 are the paper's own as long as the ink covers less
    than 3/4 of the image, while the median and its absolute deviation, used before, took a
    big bold digit's pixels for paper noise (a digit on a third of the image raised the noise
    floor above its own faint half). Gaussian noise: p25 - p5 = 0.97 sigma, median = p25 +
    0.67 sigma."""
    p5, p25 = np.percentile(ink, [5, 25])
    sigma = float(p25 - p5) / 0.971
    return float(p25) + 0.674 * sigma, sigma
