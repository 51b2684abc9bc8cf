"""nano-tflm trainer: MNIST -> Keras -> full-int8 TFLite -> C arrays for TFLite Micro."""

import os

# tensorflow-model-optimization needs Keras 2 (tf-keras); this must be set before TensorFlow
# is imported anywhere, so the package sets it on import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
