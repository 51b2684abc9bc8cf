"""Test helper: a firmware process (host build or QEMU) driven over stdin/stdout pipes, with a
reader thread that decodes everything it prints into protocol events."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

from nanobench import protocol as proto


class FirmwareProc:
    """Runs ``argv``; ``send(bytes)`` writes to its stdin, ``events`` collects what it sends
    back (Packet, LogLine, BadFrame), ``wait`` blocks until a condition holds or times out.
    stderr goes to a temp file (``stderr_text()``), so sanitizer reports can be checked."""

    def __init__(self, argv: Sequence[str]) -> None:
        # Lives as long as the process object; closed by the garbage collector.
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, bufsize=0)
        self.events: list[proto.Event] = []
        self.rx_bytes = 0
        self._cv = threading.Condition()
        self._decoder = proto.FrameDecoder()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            data = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") else \
                self.proc.stdout.read(4096)
            if not data:
                with self._cv:
                    self._cv.notify_all()
                return
            evs = self._decoder.feed(data)
            with self._cv:
                self.rx_bytes += len(data)
                self.events.extend(evs)
                self._cv.notify_all()

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait(self, cond: Callable[[list[proto.Event]], bool], timeout: float) -> bool:
        """Wait until ``cond(events)`` is true; False on timeout or when the process ended."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not cond(self.events):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return cond(self.events)
                self._cv.wait(min(left, 0.2))
            return True

    def packets(self) -> list[proto.Packet]:
        with self._cv:
            return [e for e in self.events if isinstance(e, proto.Packet)]

    def take(self) -> list[proto.Event]:
        """Return and forget the events so far."""
        with self._cv:
            evs, self.events = self.events, []
            return evs

    def wait_packets(self, n: int, timeout: float = 10.0) -> list[proto.Packet]:
        """Wait for n packets (counted from the last ``take``) and take everything."""
        self.wait(lambda evs: sum(isinstance(e, proto.Packet) for e in evs) >= n, timeout)
        return [e for e in self.take() if isinstance(e, proto.Packet)]

    def request(self, ptype: int, seq: int, body: bytes = b"", timeout: float = 10.0
                ) -> proto.Packet:
        """Send one request and return the packet with its sequence number."""
        self.send(proto.encode_request(ptype, seq, body))
        ok = self.wait(lambda evs: any(isinstance(e, proto.Packet) and e.seq == seq for e in evs),
                       timeout)
        evs = self.take()
        assert ok, f"no reply to type {ptype} seq {seq} within {timeout} s; got {evs[-5:]}"
        return [e for e in evs if isinstance(e, proto.Packet) and e.seq == seq][-1]

    def stderr_text(self) -> str:
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")

    def close(self, timeout: float = 10.0) -> int | None:
        """Close stdin (the host build exits on end of input), wait, else kill. Returns the
        exit code (None if it had to be killed)."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
