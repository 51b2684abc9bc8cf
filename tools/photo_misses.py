#!/usr/bin/env python3
"""Where does a model miss on the widened synthetic photo set? Accuracy, misses by category and a
contact sheet per category, plus the MNIST check (test digits as dark ink on white paper).

The set is rendered (`trainer.synth.make_set`, kind "wide") with each image's style recorded,
preprocessed by `trainer.images.preprocess_array` and classified by an int8 model through the
TFLM reference. A miss is counted once, in the first category that applies: "lines" (ruled or
squared paper), "shadow", "pen" (hand-drawn glyph on plain or grainy paper), "font".
Images refused as "no ink" are counted apart.

Usage: python tools/photo_misses.py [--seed 1] [--per-class 100] [--mnist 500] [--blank 200]
           [--tflite firmware/lib/model/model_int8.tflite] [--out build/photo-misses]
Writes <out>/wide-<per_class>-<seed>/ (the images, styles.json), <out>/misses-<seed>-<cat>.png
(the 28x28 images the model saw) and, with --raw, <out>/raw-<seed>-<cat>.png (each miss's photo
next to what preprocessing made of it, to tell a preprocessing failure from a model error);
prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer import images, photo_clean, synth  # noqa: E402
from trainer.images import NoInkError, preprocess_array  # noqa: E402

CATEGORIES = ("lines", "shadow", "pen", "font")


def category(style: dict) -> str:
    """The first category of CATEGORIES that applies to one image's style."""
    if style.get("paper") in ("ruled", "grid"):
        return "lines"
    if style.get("shadow"):
        return "shadow"
    return "pen" if style.get("glyph") == "pen" else "font"


def render(out: Path, per_class: int, seed: int) -> tuple[list[Path], list[dict]]:
    """The set's files and styles, rendered once into `out`."""
    meta = out / "styles.json"
    if meta.exists():
        doc = json.loads(meta.read_text())
        return [out / n for n in doc["files"]], doc["styles"]
    styles: list[dict] = []
    paths = synth.make_set(out, per_class=per_class, seed=seed, kind="wide", styles=styles)
    meta.write_text(json.dumps({"files": [p.name for p in paths], "styles": styles}))
    return paths, styles


def blank_sheets(count: int, seed: int) -> list[np.ndarray]:
    """`count` photos of blank paper as the widened set draws it (paper, texture, blur, noise;
    `trainer.synth`'s own helpers, no digit), grayscale float in [0, 1]: preprocessing should
    refuse them as blank rather than find a digit in the paper."""
    from PIL import ImageFilter

    rng = np.random.default_rng(1000 + seed)
    side = synth._CANVAS
    out = []
    for _ in range(count):
        paper = synth._paper(rng, side) * synth._texture(rng, side)
        img = Image.fromarray(np.clip(paper * 255, 0, 255).astype(np.uint8))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.8)))
        noisy = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(0, 10), (side, side))
        out.append(np.clip(noisy, 0, 255) / 255.0)
    return out


def raw_sheet(photos: list[Path], seen: np.ndarray, labels: np.ndarray, pred: np.ndarray,
              path: Path, cols: int = 6, side: int = 84) -> Path:
    """A PNG of pairs (photo, the 28x28 image the model saw), `side` px each, `label>pred`
    under each pair."""
    from PIL import ImageDraw

    rows = max(1, -(-len(photos) // cols))
    cell_w, cell_h = 2 * side + 8, side + 16
    sheet = Image.new("L", (cols * cell_w + 4, rows * cell_h + 4), 255)
    draw = ImageDraw.Draw(sheet)
    for i, photo in enumerate(photos):
        r, c = divmod(i, cols)
        x0, y0 = 4 + c * cell_w, 4 + r * cell_h
        with Image.open(photo) as img:
            sheet.paste(img.convert("L").resize((side, side), Image.Resampling.BILINEAR),
                        (x0, y0))
        small = Image.fromarray(np.asarray(seen[i], np.uint8))
        sheet.paste(small.resize((side, side), Image.Resampling.NEAREST), (x0 + side + 2, y0))
        draw.text((x0, y0 + side + 2), f"{int(labels[i])}>{int(pred[i])} {photo.name}", fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--tflite", default=str(ROOT / "firmware/lib/model/model_int8.tflite"))
    p.add_argument("--out", default=str(ROOT / "build/photo-misses"))
    p.add_argument("--mnist", type=int, default=0, help="also check this many MNIST test digits")
    p.add_argument("--blank", type=int, default=0,
                   help="also count how many of this many blank sheets are refused")
    p.add_argument("--no-sheets", action="store_true")
    p.add_argument("--raw", action="store_true",
                   help="also write raw-<seed>-<category>.png: each miss's photo next to what "
                        "the model saw")
    p.add_argument("--steps", default=None,
                   help="comma-separated preprocessing steps (default: all of images.STEPS)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a constant (float) of trainer.images or trainer.photo_clean, "
                        "e.g. _FLAT=0.25")
    args = p.parse_args(argv)
    for item in args.set:
        name, value = item.split("=", 1)
        owner = next((m for m in (images, photo_clean) if hasattr(m, name)), None)
        if owner is None:
            p.error(f"neither trainer.images nor trainer.photo_clean has {name}")
        setattr(owner, name, float(value))
    steps = None if args.steps is None else frozenset(filter(None, args.steps.split(",")))
    out = Path(args.out)
    paths, styles = render(out / f"wide-{args.per_class}-{args.seed}", args.per_class, args.seed)
    kept, labels, cats, refused = [], [], [], {c: 0 for c in CATEGORIES}
    kept_paths: list[Path] = []
    seconds = 0.0
    for path, style in zip(paths, styles, strict=True):
        with Image.open(path) as img:
            gray = images._to_gray(img)
        t0 = time.perf_counter()
        try:
            kept.append(preprocess_array(gray, steps))
        except NoInkError:
            refused[category(style)] += 1
            continue
        finally:
            seconds += time.perf_counter() - t0
        kept_paths.append(path)
        labels.append(images.label_from_name(Path(path.name)))
        cats.append(category(style))
    x = np.stack(kept)
    y = np.asarray(labels)
    pred = images.predict_tflite(args.tflite, x)
    wrong = pred != y
    c = np.asarray(cats)
    result = {
        "steps": sorted(images.STEPS if steps is None else steps), "seed": args.seed,
        "per_class": args.per_class, "tflite": args.tflite,
        "usable": int(len(y)), "refused": int(sum(refused.values())),
        "accuracy_of_usable": round(float(np.mean(~wrong)), 4),
        "accuracy_of_all": round(float(np.sum(~wrong)) / len(paths), 4),
        "ms_per_image": round(1000 * seconds / len(paths), 2),
        "misses": {k: int(np.sum(wrong & (c == k))) for k in CATEGORIES},
        "images": {k: int(np.sum(c == k)) for k in CATEGORIES},
        "refused_by_category": refused,
    }
    if not args.no_sheets:
        for k in CATEGORIES:
            sel = wrong & (c == k)
            if sel.any():
                images.contact_sheet(x[sel], y[sel], pred[sel],
                                     out / f"misses-{args.seed}-{k}.png", cols=15)
                if args.raw:
                    raw_sheet([q for q, m in zip(kept_paths, sel, strict=True) if m], x[sel],
                              y[sel], pred[sel], out / f"raw-{args.seed}-{k}.png")
    if args.mnist:
        from trainer.data import load_mnist

        data = load_mnist()
        raw = data.x_test[:args.mnist]
        truth = data.y_test[:args.mnist].astype(np.int64)
        # Dark ink on white paper, as a scan of an MNIST digit would be.
        pre = np.stack([preprocess_array(1.0 - im.astype(np.float32) / 255.0, steps)
                        for im in raw])
        result["mnist_raw"] = round(float(np.mean(images.predict_tflite(args.tflite, raw)
                                                  == truth)), 4)
        result["mnist_inverted_preprocessed"] = round(float(np.mean(
            images.predict_tflite(args.tflite, pre) == truth)), 4)
    if args.blank:
        refused_blank = 0
        for sheet in blank_sheets(args.blank, args.seed):
            try:
                preprocess_array(sheet, steps)
            except NoInkError:
                refused_blank += 1
        result["blank_refused"] = refused_blank
        result["blank"] = args.blank
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
