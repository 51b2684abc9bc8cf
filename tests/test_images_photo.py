"""Photo preprocessing steps for real paper: local background flattening (shadow edges), ruled and
squared paper line removal, and keeping only the digit's pieces of ink.

Each photo test also runs the pipeline without the step under test (`steps=` the old pipeline's
"deskew", "stroke"), which must fail the same check: the test shows what the step fixes.
"""

from __future__ import annotations

import numpy as np
import pytest

from trainer.images import STEPS, NoInkError, _dark_ink, preprocess_array
from trainer.photo_clean import box_blur, components, keep_digit, run_min_max

OLD = frozenset({"deskew", "stroke"})
SIDE = 112


def _seven(side: int = SIDE) -> np.ndarray:
    """A '7' in the middle of the frame: coverage 0..1, strokes about 6 % of the side."""
    x = np.zeros((side, side), np.float32)
    t = max(3, side // 16)
    top, bottom, left, right = side // 4, 3 * side // 4, side // 3, 2 * side // 3
    x[top:top + t, left:right] = 1.0
    for r in range(top, bottom):
        c = int(right - (r - top) * 0.35)
        x[r, c - t // 2:c + t // 2 + 1] = 1.0
    return x


def _on_paper(cover: np.ndarray, paper: np.ndarray, seed: int = 0) -> np.ndarray:
    """Dark ink (0.15) on `paper`, with a little sensor noise, float in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = paper * (1 - cover) + 0.15 * cover + rng.normal(0, 0.01, cover.shape)
    return np.clip(img, 0, 1)


def _lines(side: int, pitch: int, slope: float, vertical: bool, dark: float) -> np.ndarray:
    """Multiplicative paper with lines 1 px thick every `pitch` px, tilted by `slope`."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    pos = (yy - slope * xx) if not vertical else (xx - slope * yy)
    return 1.0 - dark * ((np.round(pos) % pitch) == 3)


def _close_to(a: np.ndarray, b: np.ndarray) -> bool:
    """Same digit: the two 28x28 images correlate above 0.85 once aligned (shifts up to 2 px:
    a shadow or a line's remains may move the centre of mass a little)."""
    best = max(np.corrcoef(np.roll(a, (dy, dx), axis=(0, 1)).ravel(), b.ravel())[0, 1]
               for dy in range(-2, 3) for dx in range(-2, 3))
    return bool(best > 0.85)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return preprocess_array(_on_paper(_seven(), np.full((SIDE, SIDE), 0.85, np.float32)))


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_ruled_paper_lines_are_removed(clean, slope):
    paper = 0.85 * _lines(SIDE, 14, slope, False, 0.3)
    img = _on_paper(_seven(), paper)
    assert _close_to(preprocess_array(img), clean)
    assert not _close_to(preprocess_array(img, OLD), clean)  # the lines were kept as ink


def test_squared_paper_lines_are_removed(clean):
    paper = 0.85 * _lines(SIDE, 16, 0.05, False, 0.3) * _lines(SIDE, 16, -0.05, True, 0.3)
    img = _on_paper(_seven(), paper)
    assert _close_to(preprocess_array(img), clean)
    assert not _close_to(preprocess_array(img, OLD), clean)


@pytest.mark.parametrize("dark, ink", [(0.2, 0.2), (0.45, 0.5)])
def test_squared_paper_crossings_are_removed(clean, dark, ink):
    """Squared paper where the two lines' crossings are darker than either line (each line
    takes its share of the light): both lines are subtracted there, not the darker one only,
    which left a dot at every crossing for a faint digit to be lost among."""
    paper = 0.85 * _lines(SIDE, 16, 0.05, False, dark) * _lines(SIDE, 16, -0.05, True, dark)
    rng = np.random.default_rng(0)
    img = np.clip(paper * (1 - ink * _seven()) + rng.normal(0, 0.01, paper.shape), 0, 1)
    assert _close_to(preprocess_array(img), clean)


def test_shadow_edge_is_not_ink(clean):
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1) - 0.5
    edge = 1.0 / (1.0 + np.exp(-(xx + 0.6 * yy - 0.15) * 40))  # sharp, diagonal
    paper = 0.85 * (1 - 0.45 * edge)
    img = _on_paper(_seven(), paper)
    assert _close_to(preprocess_array(img), clean)
    assert not _close_to(preprocess_array(img, OLD), clean)


@pytest.mark.parametrize("cut", [0.1, 0.3])
def test_dark_ink_in_a_shadow_over_most_of_the_sheet(clean, cut):
    """A shadow over the left 60 or 80 % of the sheet, the digit in it or (0.1) the shadow's
    edge through the digit: the lit paper is the image's bright tail, longer than the ink's
    dark one, yet the ink is still dark (the photo is inverted), and the digit comes out as on
    plain paper, no part of the edge taken for ink, the ink in the light no stronger than in
    the shadow."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1) - 0.5
    lit = 1.0 / (1.0 + np.exp(-(xx - cut) * 25))
    paper = 0.85 * (1 - 0.45 * (1 - lit))
    cover = _seven()
    rng = np.random.default_rng(0)
    img = np.clip(paper * (1 - 0.5 * cover) + rng.normal(0, 0.01, cover.shape), 0, 1)
    assert _dark_ink(img)
    assert _close_to(preprocess_array(img), clean)


def test_noise_floor_is_the_papers_not_a_bold_digits():
    """A bold, blurred digit over about 30 % of the image (a close-up photo): its strokes and
    their soft rims are all above the paper, so the paper's noise must be taken from below
    (the median absolute deviation counted the rims as noise and raised the floor the ink has
    to clear by half or more)."""
    from PIL import Image, ImageFilter

    from trainer.photo_clean import flatten

    t = SIDE // 7
    cover = np.zeros((SIDE, SIDE), np.float32)
    cover[14:14 + t, 18:94] = 1.0
    for r in range(14, 98):
        c = int(94 - (r - 14) * 0.4)
        cover[r, c - t:c] = 1.0
    img = Image.fromarray((cover * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(4))
    cover = np.asarray(img, np.float32) / 255.0
    assert 0.25 < np.mean(cover > 0.1) < 0.35
    noise = np.random.default_rng(0).normal(0, 0.03, cover.shape).astype(np.float32)
    _, paper_only = flatten(noise)
    _, with_digit = flatten(0.3 * cover + noise)
    assert with_digit < 1.5 * paper_only, (with_digit, paper_only)


def test_a_glint_brighter_than_the_ink_is_dark_does_not_flip_the_photo(clean):
    """Dim paper (0.5), ink 0.15 below it and a small glint 0.18 above it: the bright tail is a
    little longer than the dark one, but a photo is taken for light ink on a dark ground only
    when its bright tail is clearly (1.4 times) the longer."""
    rng = np.random.default_rng(0)
    img = 0.5 * (1 - 0.3 * _seven()) + rng.normal(0, 0.01, (SIDE, SIDE))
    img[85:95, 10:20] += 0.18
    img = np.clip(img, 0, 1)
    assert _dark_ink(img)
    assert _close_to(preprocess_array(img), clean)


def test_a_vignetted_blank_sheet_is_refused_and_a_digit_on_it_read(clean):
    """Paper darkening towards the frame's edges and corners (a phone camera's vignetting, and
    a light gradient): blank, it is refused as blank, not read as a digit from its dark rim;
    with a digit, the digit comes out as on plain paper."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1) - 0.5
    paper = 0.8 * (1 - 0.6 * (xx ** 2 + yy ** 2)) * (1 + 0.1 * xx)
    rng = np.random.default_rng(0)
    with pytest.raises(NoInkError):
        preprocess_array(np.clip(paper + rng.normal(0, 0.01, paper.shape), 0, 1))
    assert _close_to(preprocess_array(_on_paper(_seven(), paper)), clean)


def test_a_blank_blotchy_sheet_is_refused():
    """Blank paper with blotches 10 % darker or lighter than its mean (cheap paper, uneven
    light): once the photo is divided by its paper, the blotches' remains are no darker than
    the paper's own variations, below `_MIN_CONTRAST`, and the sheet is refused as blank."""
    from PIL import Image

    for seed in range(10):
        rng = np.random.default_rng(seed)
        coarse = Image.fromarray(rng.normal(0, 1, (5, 5)).astype(np.float32), mode="F")
        blot = np.asarray(coarse.resize((SIDE, SIDE), Image.Resampling.BICUBIC))
        paper = 0.8 * (1 + 0.1 * blot / np.abs(blot).max())
        with pytest.raises(NoInkError):
            preprocess_array(np.clip(paper + rng.normal(0, 0.01, paper.shape), 0, 1))


def test_box_blur_matches_a_brute_force_mean():
    x = np.random.default_rng(1).random((9, 13)).astype(np.float32)
    r = 2
    p = np.pad(x, r, mode="edge")
    ref = np.array([[p[i:i + 2 * r + 1, j:j + 2 * r + 1].mean() for j in range(13)]
                    for i in range(9)])
    assert np.allclose(box_blur(x, r, passes=1), ref, atol=1e-5)


@pytest.mark.parametrize("ruled", [False, True])
def test_a_stem_running_out_of_the_frame_is_not_a_line(ruled):
    """A '1' whose stem runs out of the bottom of the frame (64 % of the side, shorter than a
    paper line): its stem is ink, on plain or ruled paper. Counted from the frame's edge
    outwards (an edge-repeating opening) it was an endless vertical line, and about half of
    its ink was subtracted."""
    cover = np.zeros((SIDE, SIDE), np.float32)
    cover[40:, SIDE // 2 - 3:SIDE // 2 + 3] = 1.0
    cover[40:46, SIDE // 2 - 14:SIDE // 2] = 1.0  # the flag
    paper = np.full((SIDE, SIDE), 0.85, np.float32)
    ref = preprocess_array(_on_paper(cover, paper), STEPS - {"lines"})
    if ruled:
        paper = 0.85 * _lines(SIDE, 14, 0.05, False, 0.3)
    out = preprocess_array(_on_paper(cover, paper))
    assert _close_to(out, ref)
    assert out[14:].sum() > 0.8 * ref[14:].sum()  # the stem's lower half is all there


def test_a_digit_that_fills_a_small_frame_survives():
    """A 28x28 crop with the digit filling it (MNIST-like): flattening must not hollow the
    strokes (its window is wider than a stroke) and nothing touching the border is lost."""
    cover = _seven(28)
    img = _on_paper(cover, np.full((28, 28), 0.9, np.float32))
    new, old = preprocess_array(img), preprocess_array(img, OLD)
    assert _close_to(new, old)


def test_specks_and_border_pieces_are_dropped_digit_pieces_kept():
    ink = np.zeros((60, 60), np.float32)
    ink[15:45, 20:24] = 1.0  # a stroke ...
    ink[15:19, 28:40] = 1.0  # ... and a second, separate stroke of the same digit
    ink[50, 50] = 1.0  # a speck
    ink[0:10, 0:30] = 0.5  # something heavy touching the border (a shadow's edge)
    out = keep_digit(ink)
    assert out[15:45, 20:24].min() == 1.0 and out[15:19, 28:40].min() == 1.0
    assert out[50, 50] == 0 and out[0:10, 0:30].max() == 0
    tight = np.zeros((20, 20), np.float32)
    tight[:, 8:12] = 1.0  # a '1' cropped tight: touches the border, and is all there is
    assert np.array_equal(keep_digit(tight), tight)


def _flood_labels(mask: np.ndarray) -> np.ndarray:
    """Reference 8-connected labelling by flood fill (slow, for tests)."""
    labels = np.zeros(mask.shape, np.int32)
    n = 0
    h, w = mask.shape
    for r0 in range(h):
        for c0 in range(w):
            if mask[r0, c0] and not labels[r0, c0]:
                n += 1
                stack = [(r0, c0)]
                labels[r0, c0] = n
                while stack:
                    r, c = stack.pop()
                    for dr in (-1, 0, 1):
                        for dc in (-1, 0, 1):
                            rr, cc = r + dr, c + dc
                            if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] \
                                    and not labels[rr, cc]:
                                labels[rr, cc] = n
                                stack.append((rr, cc))
    return labels


@pytest.mark.parametrize("seed", range(4))
def test_components_match_a_flood_fill(seed):
    mask = np.random.default_rng(seed).random((40, 50)) < 0.4
    labels, n = components(mask)
    ref = _flood_labels(mask)
    assert n == ref.max()
    # The same partition: each label pairs with exactly one reference label.
    pairs = set(zip(labels[mask].tolist(), ref[mask].tolist(), strict=True))
    assert len(pairs) == n and (labels[~mask] == 0).all()


@pytest.mark.parametrize("length", [2, 3, 8, 23])
def test_sliding_min_max_matches_brute_force(length):
    x = np.random.default_rng(length).random((3, 30, 40))
    for axis in (1, 2):
        lo = length // 2
        pad = [(0, 0)] * 3
        pad[axis] = (lo, length - lo)
        p = np.pad(x, pad, mode="edge")
        for op, red in ((np.minimum, np.min), (np.maximum, np.max)):
            ref = np.stack([red(np.take(p, range(i, i + length), axis=axis), axis=axis)
                            for i in range(x.shape[axis])], axis=axis)
            assert np.array_equal(run_min_max(x, length, axis, op), ref)
