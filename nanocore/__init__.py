"""The bottom layer of nano-tflm: errors, option and path checks, atomic writes and C text
helpers that every other package uses. It imports no other package of the project."""
