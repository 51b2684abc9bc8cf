"""Device commands over a transport: HELLO, STATS, RESET, SELFTEST, INFER (one or pipelined).

A single request waits for its own reply and re-sends on timeout; ``infer_many`` hands the
stream to ``nanobench.client.pipeline.Pipeline``. Replies that never come are explained from
what did arrive (silence, an echo, another protocol version, text that is not ours).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from nanobench import protocol as proto
from nanobench.client.pipeline import Inference, Lost, Pipeline
from nanobench.client.transport import DeviceError, Transport

log = logging.getLogger("nanobench.client")

MAX_LOG_LINES = 200  # log lines kept in Device.log_lines (boot line, self-test lines)

# HELLO fields that must be whole numbers when present (the firmware writes them with kv_u32).
HELLO_COUNTS = ("proto", "ready", "arena_bytes", "arena_used_bytes", "model_bytes", "clock_hz",
                "tick_hz", "ticks_to_units", "stack_bytes", "stack_used_bytes", "max_body",
                "selftest_count", "infer_rle")
HELLO_SHAPES = ("input_shape", "output_shape")  # like 1x28x28x1


@dataclass
class Counters:
    """Link counters since the last ``Device.reset_counters()``."""

    sent: int = 0  # frames written
    replies: int = 0  # valid replies used
    retries: int = 0  # re-sends
    error_frames: int = 0  # ERROR packets from the device
    bad_frames: int = 0  # chunks that were neither a packet nor text
    timeouts: int = 0  # requests given up waiting for
    malformed: int = 0  # replies that decoded but failed validation (class byte, score count)
    stale: int = 0  # replies to a request already answered or abandoned
    lost: int = 0  # requests that ran out of attempts
    error_codes: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        """Every error seen: error frames + undecodable frames + malformed replies + timeouts."""
        return self.error_frames + self.bad_frames + self.malformed + self.timeouts


def check_hello(info: dict[str, str], url: str) -> None:
    """Refuse a HELLO whose numeric fields are not numbers: one line naming the field."""
    for key in HELLO_COUNTS:
        value = info.get(key)
        if value is not None and not (value.isascii() and value.isdigit()):
            raise DeviceError(f"device at {url} sent a malformed HELLO: {key}={value!r} is not "
                              "a whole number (wrong or damaged firmware?)")
    for key in HELLO_SHAPES:
        value = info.get(key)
        if value is not None and not all(d.isascii() and d.isdigit() and int(d) > 0
                                         for d in value.split("x")):
            raise DeviceError(f"device at {url} sent a malformed HELLO: {key}={value!r} is not "
                              "a shape like 1x28x28x1")
    if info.get("ticks_to_units") == "0":
        raise DeviceError(f"device at {url} sent a malformed HELLO: ticks_to_units=0")


def hello_outputs(info: dict[str, str]) -> int | None:
    """Output values per inference from a (checked) HELLO's ``output_shape``; None if absent."""
    shape = info.get("output_shape")
    if not shape:
        return None
    n = 1
    for d in shape.split("x"):
        n *= int(d)
    return n


class Device:
    """A nano-tflm device on a serial-like link.

    ``port``: a pyserial URL or an open serial-like object (not closed by ``close()`` unless
    we opened it). ``timeout``: seconds to wait for a reply before re-sending (counted from the
    later of the send and the last reply, since the device answers in order). ``retries``:
    re-sends allowed per request.
    """

    def __init__(self, port: str | Any, *, timeout: float = 2.0, retries: int = 3) -> None:
        self._link = Transport(port, timeout)
        self.url = self._link.url
        self.timeout = timeout
        self.retries = retries
        self.counters = Counters()
        self.log_lines: list[str] = []
        self.boot: dict[str, str] = {}
        self.info: dict[str, str] = {}
        self._decoder = proto.FrameDecoder()
        # A random start: replies still in flight from an earlier session (a bench stopped
        # mid-stream on a real board) must not match this session's sequence numbers.
        self._seq = random.randrange(0, proto.SEQ_NONE)
        self._echoes = 0
        self._version_seen: int | None = None

    # -- plumbing (the pipeline uses these too) --------------------------------------------

    def close(self) -> None:
        """Close the port if this Device opened it."""
        self._link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset_counters(self) -> None:
        """Start counting link events afresh (the bench does it before streaming)."""
        self.counters = Counters()

    def next_seq(self) -> int:
        """The next request sequence number (never the device's SEQ_NONE marker)."""
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        if self._seq == proto.SEQ_NONE:  # the device's "header unreadable" marker
            self._seq = 0
        return seq

    def write(self, data: bytes) -> None:
        """Write bytes to the link."""
        self._link.write(data)

    def read_packets(self) -> list[proto.Packet]:
        """Read what is there (waiting up to the port's poll timeout) and decode it: log lines
        are kept, undecodable frames counted, packets returned."""
        data = self._link.read()
        if not data:
            return []
        events = self._decoder.feed(data)
        for ev in events:
            if isinstance(ev, proto.LogLine):
                self._on_log(ev.text)
            elif isinstance(ev, proto.BadFrame):
                if ev.error == proto.ErrorCode.VERSION:
                    self._version_seen = -1
                self.counters.bad_frames += 1
                log.debug("bad frame (%s): %r", proto.error_name(ev.error), ev.raw[:32])
        return [ev for ev in events if isinstance(ev, proto.Packet)]

    def _on_log(self, text: str) -> None:
        log.debug("device: %s", text)
        if len(self.log_lines) < MAX_LOG_LINES:
            self.log_lines.append(text)
        if text.startswith("nano-tflm "):
            self.boot = proto.decode_info("\n".join(text.split()[1:]).encode())

    def count_error(self, pkt: proto.Packet) -> None:
        """Count an ERROR packet (in total and by code name)."""
        self.counters.error_frames += 1
        name = proto.error_name(pkt.error_code or 0)
        self.counters.error_codes[name] = self.counters.error_codes.get(name, 0) + 1

    def raise_fatal(self, pkt: proto.Packet) -> None:
        """Raise a ``DeviceError`` for an ERROR packet no re-send can cure."""
        code = pkt.error_code
        if code == proto.ErrorCode.VERSION:
            raise DeviceError(f"device at {self.url} rejects protocol version {proto.VERSION} "
                              "(ERR_VERSION): update the firmware or the host tools")
        if code == proto.ErrorCode.NOT_READY:
            raise DeviceError(f"device at {self.url} is not ready: its backend failed to "
                              f"initialise ({pkt.error_message or 'no detail'}); reflash it")
        if code == proto.ErrorCode.INPUT_SIZE:
            raise DeviceError(f"device at {self.url} expects another input size "
                              f"({pkt.error_message or 'ERR_INPUT_SIZE'}): wrong model?")

    # -- single request/reply -------------------------------------------------------------

    def _request(self, ptype: int, body: bytes = b"", *, timeout: float | None = None,
                 attempts: int | None = None) -> proto.Packet:
        """Send one request and return its reply packet (re-sending on timeout)."""
        timeout = self.timeout if timeout is None else timeout
        attempts = 1 + self.retries if attempts is None else attempts
        want = ptype | proto.REPLY_FLAG
        last = "no reply"
        sent: set[int] = set()  # a late reply to an earlier attempt is as good as any
        for attempt in range(attempts):
            if attempt:
                self.counters.retries += 1
            seq = self.next_seq()
            sent.add(seq)
            self.write(proto.encode_request(ptype, seq, body))
            self.counters.sent += 1
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for pkt in self.read_packets():
                    if pkt.type in proto.REQUEST_TYPES:
                        self._echoes += 1  # our own request came back: a loopback
                        continue
                    if pkt.seq not in sent:
                        self.counters.stale += 1
                        continue
                    if pkt.type == want:
                        self.counters.replies += 1
                        return pkt
                    if pkt.is_error:
                        self.count_error(pkt)
                        self.raise_fatal(pkt)
                        last = f"{proto.error_name(pkt.error_code)} {pkt.error_message}".strip()
                        if pkt.seq == seq:
                            break  # the latest attempt failed: re-send now
                        continue
                    self.counters.stale += 1
                else:
                    continue
                break  # an error reply: re-send now
            else:
                self.counters.timeouts += 1
        raise self._silence_error(ptype, last)

    def _silence_error(self, ptype: int, last: str) -> DeviceError:
        """The one-line reason a request got no reply, from what did arrive."""
        if self._version_seen == -1 or (self.boot.get("proto")
                                        and self.boot["proto"] != str(proto.VERSION)):
            got = self.boot.get("proto", "another")
            return DeviceError(f"device at {self.url} speaks protocol version {got}, this host "
                               f"speaks {proto.VERSION}: update the firmware or the host tools")
        if self._echoes and self.counters.replies == 0:
            return DeviceError(f"device at {self.url} echoes the requests back: a loopback or "
                               "a terminal, not the nano-tflm firmware")
        if self._link.rx_bytes == 0:
            return DeviceError(f"device at {self.url} is silent: no reply in "
                               f"{self.timeout:g} s (is the nano-tflm firmware flashed? "
                               "try the reset button)")
        if self.counters.replies == 0 and not self.boot:
            # Text without our 0x00 delimiters never becomes a log line: look at raw bytes.
            raw = bytes(self._link.rx_head).replace(b"\0", b"\n").decode("ascii", "replace")
            seen = next((t.strip() for t in self.log_lines + raw.splitlines()
                         if t.strip().isprintable() and t.strip()), "")
            detail = f"it says {seen[:60]!r}" if seen else "only unreadable bytes"
            return DeviceError(f"device at {self.url} does not speak the nano-tflm protocol "
                               f"({detail}): flash the nano-tflm firmware")
        return DeviceError(f"device at {self.url} did not answer command 0x{ptype:02x} "
                           f"({last}) after {1 + self.retries} attempts")

    # -- commands -------------------------------------------------------------------------

    def hello(self) -> dict[str, str]:
        """HELLO: the device's info (``fw``, ``proto``, ``board``, ``backend``,
        ``model_sha256``, shapes, quantization, arena, clock, timer...). Also stored in
        ``self.info``. Sends an empty frame first so a half-received frame on the device ends.
        """
        self.write(b"\x00")
        pkt = self._request(proto.HELLO)
        info = proto.decode_info(pkt.body)
        check_hello(info, self.url)
        self.info = info
        got = self.info.get("proto")
        if got is not None and got != str(proto.VERSION):
            raise DeviceError(f"device at {self.url} speaks protocol version {got}, this host "
                              f"speaks {proto.VERSION}: update the firmware or the host tools")
        return self.info

    def stats(self) -> dict[str, str]:
        """STATS: counters (``inferences``, ``errors``, ``rx_bytes``, ``frames_bad``,
        ``stack_used_bytes``, ``latency_min``/``latency_max`` in ticks)."""
        return proto.decode_info(self._request(proto.STATS).body)

    def reset(self) -> None:
        """RESET: clear the device's counters and latency extremes."""
        self._request(proto.RESET)

    def selftest(self, timeout: float = 30.0) -> tuple[bool, str]:
        """SELFTEST: run the embedded test images; (passed, text) with text like
        ``selftest: pass 5/5``."""
        text = self._request(proto.SELFTEST, timeout=timeout).body.decode("ascii", "replace")
        return text.strip().startswith("selftest: pass"), text.strip()

    def infer(self, pixels: object) -> Inference:
        """One INFER (784 uint8 pixels, see ``protocol.encode_pixels``)."""
        for out in self.infer_many([pixels], window=1):
            if isinstance(out, Lost):
                raise DeviceError(f"device at {self.url} did not answer INFER "
                                  f"({out.reason}) after {out.attempts} attempts")
            return out
        raise AssertionError("infer_many yielded nothing")  # unreachable: one in, one out

    def infer_many(self, images: Iterable[object], window: int = 8,
                   rle: bool | None = None,
                   outputs: int | None = None) -> Iterator[Inference | Lost]:
        """Stream images with up to ``window`` requests in flight; yield one ``Inference`` or
        ``Lost`` per image, in the order the device answers (``.index`` says which image).
        ``rle``: send INFER_RLE (zero-run coded pixels); None = when HELLO said ``infer_rle=1``.
        ``outputs``: scores each reply must carry (the model's output size); None = HELLO's
        ``output_shape`` when it has one. A reply with another count, or whose class byte is
        not the first argmax of its scores, is malformed: an error, re-sent, never a result.
        """
        # INFER_RLE (zero-run coded pixels, ~4x fewer bytes on the link) when HELLO said the
        # firmware has it; the link, not the device, is the bottleneck under emulation.
        if rle is None:
            rle = self.info.get("infer_rle") == "1"
        if outputs is None:
            outputs = hello_outputs(self.info)
        yield from Pipeline(self, images, window=window, rle=rle, outputs=outputs)
