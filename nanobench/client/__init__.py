"""Host client for the nano-tflm firmware: HELLO, pipelined INFER, STATS, RESET, SELFTEST.

Three layers, one module each:

- ``transport``: the port. Injectable (esptool's ``ESPLoader`` habit): a pyserial URL
  (``/dev/ttyACM0``, ``socket://127.0.0.1:PORT``, ``loop://``), opened with
  ``serial.serial_for_url``, or any open object with ``read(n)``, ``write(b)`` and,
  optionally, ``in_waiting``, ``timeout`` and ``close()`` (``nanobench.emulate`` hands one over
  for QEMU on stdio pipes).
- ``device``: ``Device``, the commands, one request and its reply at a time.
- ``pipeline``: ``Pipeline``, the state of a pipelined INFER stream (``Device.infer_many``;
  docs/PROTOCOL.md, "Pipelining").
"""

from nanobench.client.device import Counters, Device, check_hello, hello_outputs
from nanobench.client.pipeline import Inference, Lost, Pipeline, reply_problem
from nanobench.client.transport import DEFAULT_BAUD, POLL_SECONDS, DeviceError, Transport

__all__ = [
           "DEFAULT_BAUD",
           "POLL_SECONDS",
           "Counters",
           "Device",
           "DeviceError",
           "Inference",
           "Lost",
           "Pipeline",
           "Transport",
           "check_hello",
           "hello_outputs",
           "reply_problem",
]
