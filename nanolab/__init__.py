"""Orchestration of nano-tflm: the stages of trainer/ and the device link of nanobench/ put
together (bench of a model, studies, the demo). The only layer that imports both."""
