"""nano-tflm trainer: MNIST -> Keras -> full-int8 TFLite -> C arrays for TFLite Micro.

Importing the package has no side effects; TensorFlow's environment is set where TensorFlow is
imported, in ``trainer.tf``.
"""

__version__ = "0.1.0"
