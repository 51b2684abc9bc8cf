"""Synthetic-photo accuracy of a sweep's runs: each stored int8 model run through the TFLM
reference on the photo-like synthetic set (``trainer.synth.load_set``, preprocessed by
``trainer.images``; the same set the demo reports). Stored beside the run as
``runs/<key>-s<seed>.photo.json`` (keyed by the model's sha256 and the photo pipeline's
source, `preprocess_version`); :func:`nanolab.sweep.aggregate.aggregate` averages it over
seeds as ``photo_accuracy``. Runs in the driver after the sweep, only for studies whose
``[select]`` rule names ``photo_accuracy`` (a few seconds per run).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from nanolab.sweep.store import load_record, read_json, run_path, write_json_atomic
from nanolab.sweep.study import Study

log = logging.getLogger(__name__)


def needs_photos(study: Study) -> bool:
    """Does the study's selection rule read the synthetic-photo accuracy?"""
    return study.select is not None and "photo_accuracy" in study.select.figures()


def preprocess_version() -> str:
    """Fingerprint of the photo pipeline (the sources of trainer/images.py, photo_clean.py and
    synth.py): a stored accuracy measured with other preprocessing or another set is measured
    again."""
    from trainer import images, photo_clean, synth

    h = hashlib.sha256()
    for mod in (images, photo_clean, synth):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


def photo_accuracy(study: Study, out_dir: str | os.PathLike) -> int:
    """Measure every stored run of ``study`` not yet measured (same int8 sha256); returns how
    many runs were measured now. Accuracy is a fraction of the set's labelled images."""
    import numpy as np

    from nanolab.demo import SYNTH_CACHE, SYNTH_PER_CLASS, SYNTH_SEED
    from trainer.images import predict_tflite
    from trainer.synth import load_set

    out_dir = Path(out_dir)
    version = preprocess_version()
    folder = None
    measured = 0
    for point, seed in study.runs():
        tfl = run_path(out_dir, point.key, seed, ".tflite")
        if load_record(out_dir, point, seed) is None or not tfl.is_file():
            continue
        sha = hashlib.sha256(tfl.read_bytes()).hexdigest()
        path = run_path(out_dir, point.key, seed, ".photo.json")
        old = read_json(path)
        if old and old.get("int8_sha256") == sha and old.get("preprocess") == version:
            continue
        if folder is None:
            folder = load_set(SYNTH_CACHE, per_class=SYNTH_PER_CLASS, seed=SYNTH_SEED)
        pred = predict_tflite(tfl, folder.images)
        acc = float(np.mean(pred == folder.labels))
        write_json_atomic(path, {"photo_accuracy": acc, "images": len(folder.names),
                                 "int8_sha256": sha, "seed": seed,
                                 "preprocess": version})
        measured += 1
        log.info("%s seed %d: synthetic-photo accuracy %.4f", point.labels[0], seed, acc)
    return measured
