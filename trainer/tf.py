"""The one place TensorFlow is imported: its environment first, then the module.

tensorflow-model-optimization needs Keras 2 (tf-keras), which TensorFlow selects only when
``TF_USE_LEGACY_KERAS=1`` is set before it is first imported; ``TF_CPP_MIN_LOG_LEVEL=2`` keeps
its C++ info and warning lines off stderr. Every module that uses TensorFlow, tf-keras or tfmot
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
