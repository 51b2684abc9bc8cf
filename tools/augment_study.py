#!/usr/bin/env python3
"""Does training-time augmentation help on photo-like digits without costing MNIST accuracy?

Trains the default model (tools/demo.py's DEFAULT_CONFIG: cnn, default epochs, all 60,000
training images) with and without trainer.augment, quantizes both with per-tensor dense weights,
and reports float/int8 accuracy on the MNIST test set and on the synthetic photo-like set, plus
training seconds per epoch. Models are cached (build/augstudy/plain, and build/default for the
augmented run, which is the demo's default model). Results: build/augstudy/results.json.

Usage: python tools/augment_study.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo

from trainer.data import load_mnist


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data = load_mnist(args.data_dir)
    out = demo.ROOT / "build" / "augstudy"
    rows, results = [], {}
    for augment in (False, True):
        cfg = dataclasses.replace(demo.DEFAULT_CONFIG,
                                  train=dataclasses.replace(demo.DEFAULT_CONFIG.train,
                                                            augment=augment))
        directory = demo.BUILD if cfg == demo.DEFAULT_CONFIG else out / (
            "augment" if augment else "plain")
        trained = demo.train_or_reuse(cfg, data, directory)
        tflite = demo.quantize_or_reuse(trained, cfg, data)
        m = demo.evaluate_mnist(trained, tflite, data)
        m.update(demo.evaluate_synth(trained, tflite))
        m["seconds_per_epoch"] = trained.info.get("seconds_per_epoch")
        m["cpu_seconds_per_epoch"] = trained.info.get("cpu_seconds_per_epoch")
        m["epochs"] = trained.info.get("epochs")
        name = "cnn+aug" if augment else "cnn"
        rows.append((name, m))
        results[name] = {k: v for k, v in m.items() if k != "ops"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(demo.results_table(rows))
    for name, m in rows:
        print(f"{name}: {m['epochs']} epochs, {m['seconds_per_epoch']} s/epoch wall, "
              f"{m['cpu_seconds_per_epoch']} CPU s/epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
