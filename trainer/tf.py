"""The one place TensorFlow is imported: its environment first, then the module.

tensorflow-model-optimization needs Keras 2 (tf-keras), which TensorFlow selects only when
``TF_USE_LEGACY_KERAS=1`` is set before it is first imported; ``TF_CPP_MIN_LOG_LEVEL=2`` keeps
its C++ info and warning lines off stderr; ``TF_ENABLE_ONEDNN_OPTS=1`` (below) makes training
2.4x cheaper on AVX2 CPUs. Every module that uses TensorFlow, tf-keras or tfmot
imports them from here::

    from trainer.tf import tf          # tensorflow (imported with this module)
    from trainer.tf import keras       # tf_keras, imported on first use
    from trainer.tf import tfmot       # tensorflow_model_optimization, imported on first use

A value the user already exported wins (``setdefault``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's oneDNN CPU kernels were off by default on the AVX2 machines we train on (AMD EPYC,
# 2 cores; measured; that TensorFlow ties the default to CPU features such as AVX-512 VNNI/BF16 or
# AMX is from its release notes, unchecked here); turned on, they train the default cnn in 0.32 ms
# of CPU per image instead of 0.75-0.79 (measured, /tmp scripts timing Model.fit on 4,000
# augmented images), so they are asked for here. Results differ from the Eigen kernels' in the
# last bits only; an exported value wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Imported after the environment above, which is the point of this module.
tf = importlib.import_module("tensorflow")

# Imported on first use: tf_keras costs a second or two, tfmot several more.
_LAZY = {"keras": "tf_keras", "tfmot": "tensorflow_model_optimization"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
