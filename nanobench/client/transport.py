"""The link to a device: open a pyserial URL (or take an open serial-like object), write bytes,
read what is there. Every failure becomes a one-line ``DeviceError``.

A serial-like object has ``read(n)`` and ``write(b)`` and, optionally, ``in_waiting``,
``timeout``, ``flush()`` and ``close()`` (``nanobench.emulate.PipeSerial`` is one).
"""

from __future__ import annotations

from typing import Any

from nanocore.errors import UserError

DEFAULT_BAUD = 115200  # USB CDC ignores it; Renode/QEMU UART chardevs ignore it too
POLL_SECONDS = 0.02  # port read timeout: how often the pipeline loop looks at its deadlines
RX_HEAD_BYTES = 256  # first received bytes kept for "what did it say" in error messages


class DeviceError(UserError):
    """The device cannot be used: no port, busy port, silent, wrong firmware, wrong version."""


def open_port(url: str, timeout: float) -> Any:
    """Open ``url`` with ``serial.serial_for_url`` (exclusive, ``POLL_SECONDS`` read timeout,
    write timeout ``max(timeout, 1)`` seconds); a ``DeviceError`` saying what to do if not."""
    import serial

    try:
        # exclusive: a second bench on the same tty fails at once instead of stealing bytes.
        return serial.serial_for_url(url, baudrate=DEFAULT_BAUD, timeout=POLL_SECONDS,
                                     write_timeout=max(timeout, 1.0), exclusive=True)
    except (serial.SerialException, OSError) as exc:
        msg = str(exc)
        if "Errno 2]" in msg or "No such file" in msg:
            raise DeviceError(f"no serial port at {url}: is the board plugged in? "
                              "(python -m serial.tools.list_ports lists the ports)") from None
        if "Errno 16]" in msg or "Errno 11]" in msg or "busy" in msg or "lock" in msg:
            raise DeviceError(f"serial port {url} is busy: close the program that has it open "
                              "(serial monitor, another bench) and retry") from None
        if "Errno 13]" in msg:
            raise DeviceError(f"no permission to open {url}: add your user to the 'dialout' "
                              "group (or run with the right permissions)") from None
        if "Errno 111]" in msg or "refused" in msg:
            raise DeviceError(f"nothing is listening at {url}: start the emulator first, or "
                              "use --emulate") from None
        raise DeviceError(f"cannot open {url}: {msg}") from None
    except ValueError as exc:
        raise DeviceError(f"invalid port {url!r}: {exc}") from None


class Transport:
    """Bytes to and from one port: a pyserial URL (opened here, closed by ``close()``) or an
    open serial-like object (its read timeout set to ``POLL_SECONDS``, never closed here).
    ``timeout``: seconds, the write timeout of a port opened here.

    ``rx_bytes`` counts every byte read; ``rx_head`` keeps the first ``RX_HEAD_BYTES``."""

    def __init__(self, port: str | Any, timeout: float) -> None:
        self.url = port if isinstance(port, str) else getattr(port, "name", None) or repr(port)
        self.owned = isinstance(port, str)
        self.port = open_port(port, timeout) if isinstance(port, str) else port
        if not self.owned and hasattr(self.port, "timeout"):
            try:
                self.port.timeout = POLL_SECONDS
            except (AttributeError, ValueError):
                pass
        self.rx_bytes = 0
        self.rx_head = bytearray()

    def close(self) -> None:
        """Close the port if it was opened here."""
        if self.owned and self.port is not None:
            self.port.close()
        self.port = None

    def write(self, data: bytes) -> None:
        """Write all of ``data`` (flushed when the port was opened here)."""
        import serial

        try:
            self.port.write(data)
            flush = getattr(self.port, "flush", None)
            if flush is not None and self.owned:
                flush()
        except serial.SerialTimeoutException:
            raise DeviceError(f"device at {self.url} stopped reading (write timed out)") from None
        except OSError as exc:
            raise DeviceError(f"link to {self.url} failed while writing: {exc}") from None

    def read(self) -> bytes:
        """What is there now, or what comes within the port's read timeout (maybe b"")."""
        try:
            waiting = getattr(self.port, "in_waiting", 0) or 0
            data = self.port.read(max(1, waiting))
        except OSError as exc:
            raise DeviceError(f"link to {self.url} failed while reading: {exc}") from None
        if data:
            self.rx_bytes += len(data)
            if len(self.rx_head) < RX_HEAD_BYTES:
                self.rx_head += data[:RX_HEAD_BYTES - len(self.rx_head)]
        return data
