"""Host client for the nano-tflm firmware: HELLO, pipelined INFER, STATS, RESET, SELFTEST.

The port is injectable (esptool's ``ESPLoader`` habit): pass a pyserial URL (``/dev/ttyACM0``,
``socket://127.0.0.1:PORT``, ``loop://``), opened with ``serial.serial_for_url``, or any open
object with ``read(n)``, ``write(b)`` and, optionally, ``in_waiting``, ``timeout`` and
``close()`` (``nanobench.emulate`` hands one over for QEMU on stdio pipes).

Pipelining (docs/PROTOCOL.md, "Pipelining"): ``infer_many`` keeps up to ``window`` requests in
flight, matches replies by sequence number, and relies on the device answering in order: a reply
to a later request means the earlier unanswered ones were lost, so they are re-sent at once
instead of after a timeout. Every re-send is a retry (``counters.retries``); every error frame,
undecodable frame and timeout is an error (``counters.errors``). A request that runs out of
attempts is yielded as ``Lost``, never as a result.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from nanobench import protocol as proto
from nanocore.errors import UserError

log = logging.getLogger(__name__)

kDefaultBaud = 115200  # USB CDC ignores it; Renode/QEMU UART chardevs ignore it too
kPollSeconds = 0.02  # port read timeout: how often the pipeline loop looks at its deadlines
kMaxLogLines = 200  # log lines kept in Device.log_lines (boot line, self-test lines)
# Error codes after which a re-send can succeed (the bytes were damaged on the way).
kTransientErrors = {
    proto.ErrorCode.BAD_CRC, proto.ErrorCode.BAD_LENGTH, proto.ErrorCode.FRAMING,
    proto.ErrorCode.OVERSIZE, proto.ErrorCode.INVOKE,
}


# HELLO fields that must be whole numbers when present (the firmware writes them with kv_u32).
kHelloCounts = ("proto", "ready", "arena_bytes", "arena_used_bytes", "model_bytes", "clock_hz",
                "tick_hz", "ticks_to_units", "stack_bytes", "stack_used_bytes", "max_body",
                "selftest_count", "infer_rle")
kHelloShapes = ("input_shape", "output_shape")  # like 1x28x28x1


class DeviceError(UserError):
    """The device cannot be used: no port, busy port, silent, wrong firmware, wrong version."""


@dataclass(frozen=True)
class Inference:
    """One answered INFER: ``index`` is the image's position in the input iterable, ``label``
    the device's argmax class, ``scores`` its int8 output vector, ``latency_ticks`` the device's
    raw tick count around invoke, ``round_trip_s`` host seconds from the answered send to the
    reply (includes the time the request queued behind others in the window), ``retries`` how
    often this image was re-sent."""

    index: int
    label: int
    scores: tuple[int, ...]
    latency_ticks: int
    round_trip_s: float
    retries: int


@dataclass(frozen=True)
class Lost:
    """An image the device never answered after every attempt; ``reason`` says the last cause."""

    index: int
    reason: str
    attempts: int


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


@dataclass
class _Request:
    index: int
    body: bytes
    attempts: int = 0
    done: bool = False
    last_error: str = ""


@dataclass
class _Send:
    request: _Request
    sent_at: float


def check_hello(info: dict[str, str], url: str) -> None:
    """Refuse a HELLO whose numeric fields are not numbers: one line naming the field."""
    for key in kHelloCounts:
        value = info.get(key)
        if value is not None and not (value.isascii() and value.isdigit()):
            raise DeviceError(f"device at {url} sent a malformed HELLO: {key}={value!r} is not "
                              "a whole number (wrong or damaged firmware?)")
    for key in kHelloShapes:
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


def reply_problem(reply: proto.InferReply, outputs: int | None) -> str | None:
    """Why an INFER reply cannot count as a result, or None when it is valid: the score count
    must equal the model's output size, and the class byte must be the index of the first
    maximum score (TFLM's and numpy's argmax)."""
    n = len(reply.scores)
    if n == 0:
        return "no scores"
    if outputs is not None and n != outputs:
        return f"{n} scores, the model has {outputs} outputs"
    best = max(range(n), key=lambda i: (reply.scores[i], -i))
    if reply.label >= n:
        return f"class {reply.label} is not one of the {n} classes"
    if reply.label != best:
        return f"class byte {reply.label} is not the argmax of the scores ({best})"
    return None


def _open(url: str, timeout: float) -> Any:
    import serial

    try:
        # exclusive: a second bench on the same tty fails at once instead of stealing bytes.
        return serial.serial_for_url(url, baudrate=kDefaultBaud, timeout=kPollSeconds,
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


class Device:
    """A nano-tflm device on a serial-like link.

    ``port``: a pyserial URL or an open serial-like object (not closed by ``close()`` unless
    we opened it). ``timeout``: seconds to wait for a reply before re-sending (counted from the
    later of the send and the last reply, since the device answers in order). ``retries``:
    re-sends allowed per request.
    """

    def __init__(self, port: str | Any, *, timeout: float = 2.0, retries: int = 3) -> None:
        self.url = port if isinstance(port, str) else getattr(port, "name", None) or repr(port)
        self._owned = isinstance(port, str)
        self._port = _open(port, timeout) if isinstance(port, str) else port
        if not self._owned and hasattr(self._port, "timeout"):
            try:
                self._port.timeout = kPollSeconds
            except (AttributeError, ValueError):
                pass
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
        self._rx_bytes = 0
        self._rx_head = bytearray()
        self._echoes = 0
        self._version_seen: int | None = None

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the port if this Device opened it."""
        if self._owned and self._port is not None:
            self._port.close()
        self._port = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset_counters(self) -> None:
        """Start counting link events afresh (the bench does it before streaming)."""
        self.counters = Counters()

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        if self._seq == proto.SEQ_NONE:  # the device's "header unreadable" marker
            self._seq = 0
        return seq

    def _write(self, data: bytes) -> None:
        import serial

        try:
            self._port.write(data)
            flush = getattr(self._port, "flush", None)
            if flush is not None and self._owned:
                flush()
        except serial.SerialTimeoutException:
            raise DeviceError(f"device at {self.url} stopped reading (write timed out)") from None
        except OSError as exc:
            raise DeviceError(f"link to {self.url} failed while writing: {exc}") from None

    def _read_events(self) -> list[proto.Event]:
        """Read what is there (waiting up to the port's poll timeout) and decode it."""
        try:
            waiting = getattr(self._port, "in_waiting", 0) or 0
            data = self._port.read(max(1, waiting))
        except OSError as exc:
            raise DeviceError(f"link to {self.url} failed while reading: {exc}") from None
        if not data:
            return []
        self._rx_bytes += len(data)
        if len(self._rx_head) < 256:  # for "what did it say" in the error messages
            self._rx_head += data[:256 - len(self._rx_head)]
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
        if len(self.log_lines) < kMaxLogLines:
            self.log_lines.append(text)
        if text.startswith("nano-tflm "):
            self.boot = proto.decode_info("\n".join(text.split()[1:]).encode())

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
            seq = self._next_seq()
            sent.add(seq)
            self._write(proto.encode_request(ptype, seq, body))
            self.counters.sent += 1
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for pkt in self._read_events():
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
                        self._count_error(pkt)
                        self._raise_fatal(pkt)
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

    def _count_error(self, pkt: proto.Packet) -> None:
        self.counters.error_frames += 1
        name = proto.error_name(pkt.error_code or 0)
        self.counters.error_codes[name] = self.counters.error_codes.get(name, 0) + 1

    def _raise_fatal(self, pkt: proto.Packet) -> None:
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
        if self._rx_bytes == 0:
            return DeviceError(f"device at {self.url} is silent: no reply in "
                               f"{self.timeout:g} s (is the nano-tflm firmware flashed? "
                               "try the reset button)")
        if self.counters.replies == 0 and not self.boot:
            # Text without our 0x00 delimiters never becomes a log line: look at raw bytes.
            raw = bytes(self._rx_head).replace(b"\0", b"\n").decode("ascii", "replace")
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
        self._write(b"\x00")
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
        if window < 1:
            raise ValueError("window must be >= 1")
        source = enumerate(images)
        exhausted = False
        # seq -> send, in send order (the device answers in this order).
        inflight: OrderedDict[int, _Send] = OrderedDict()
        open_requests = 0
        last_progress = time.monotonic()
        # INFER_RLE (zero-run coded pixels, ~4x fewer bytes on the link) when HELLO said the
        # firmware has it; the link, not the device, is the bottleneck under emulation.
        if rle is None:
            rle = self.info.get("infer_rle") == "1"
        ptype = proto.INFER_RLE if rle else proto.INFER
        encode = proto.encode_pixels_rle if rle else proto.encode_pixels
        want = ptype | proto.REPLY_FLAG
        max_attempts = 1 + self.retries
        if outputs is None:
            outputs = hello_outputs(self.info)

        def send(req: _Request) -> None:
            nonlocal last_progress
            if req.attempts:
                self.counters.retries += 1
            req.attempts += 1
            seq = self._next_seq()
            if not inflight:
                last_progress = time.monotonic()  # the timeout counts from here
            inflight[seq] = _Send(req, time.monotonic())
            self._write(proto.encode_request(ptype, seq, req.body))
            self.counters.sent += 1

        def retry_or_lose(req: _Request, reason: str) -> Lost | None:
            """Re-send a request whose frame was lost, unless a copy is still in flight."""
            nonlocal open_requests
            req.last_error = reason
            if any(s.request is req for s in inflight.values()):
                return None
            if req.attempts < max_attempts:
                send(req)
                return None
            req.done = True
            open_requests -= 1
            self.counters.lost += 1
            return Lost(req.index, reason, req.attempts)

        while True:
            while not exhausted and open_requests < window:
                try:
                    index, pixels = next(source)
                except StopIteration:
                    exhausted = True
                    break
                try:
                    body = encode(pixels)
                except ValueError as exc:
                    raise UserError(f"image {index}: {exc}") from None
                open_requests += 1
                send(_Request(index, body))
            if open_requests == 0:
                return
            packets = self._read_events()
            now = time.monotonic()
            for pkt in packets:
                if pkt.seq not in inflight:
                    if pkt.is_error:
                        # SEQ_NONE: the header was unreadable; the gap check below finds which.
                        self._count_error(pkt)
                        self._raise_fatal(pkt)
                    else:
                        self.counters.stale += 1
                    continue
                last_progress = now
                # Every request sent before this one and still unanswered was lost on the way.
                while True:
                    seq, s = next(iter(inflight.items()))
                    if seq == pkt.seq:
                        break
                    del inflight[seq]
                    if not s.request.done:
                        lost = retry_or_lose(s.request, "no reply (later request answered)")
                        if lost:
                            yield lost
                s = inflight.pop(pkt.seq)
                req = s.request
                if req.done:  # answered already through another copy
                    self.counters.stale += 1
                    continue
                if pkt.type == want:
                    try:
                        reply = proto.decode_infer_reply(pkt.body)
                    except proto.ProtocolError as exc:
                        self.counters.bad_frames += 1
                        lost = retry_or_lose(req, f"malformed reply: {exc}")
                        if lost:
                            yield lost
                        continue
                    problem = reply_problem(reply, outputs)
                    if problem is not None:
                        self.counters.malformed += 1
                        log.debug("malformed INFER reply for image %d: %s", req.index, problem)
                        lost = retry_or_lose(req, f"malformed reply: {problem}")
                        if lost:
                            yield lost
                        continue
                    req.done = True
                    open_requests -= 1
                    self.counters.replies += 1
                    # Copies of this request still in flight will be answered: stale then.
                    yield Inference(req.index, reply.label, reply.scores, reply.latency_ticks,
                                    now - s.sent_at, req.attempts - 1)
                elif pkt.is_error:
                    self._count_error(pkt)
                    self._raise_fatal(pkt)
                    reason = f"{proto.error_name(pkt.error_code or 0)} {pkt.error_message}"
                    if pkt.error_code in kTransientErrors:
                        lost = retry_or_lose(req, reason.strip())
                    else:
                        req.done = True
                        open_requests -= 1
                        self.counters.lost += 1
                        lost = Lost(req.index, reason.strip(), req.attempts)
                    if lost:
                        yield lost
                else:
                    self.counters.stale += 1
                    lost = retry_or_lose(req, f"unexpected reply type 0x{pkt.type:02x}")
                    if lost:
                        yield lost
            # Only the oldest frame in flight can time out: the device answers in order, so
            # the others wait behind it; the clock restarts at every reply.
            if inflight:
                seq, s = next(iter(inflight.items()))
                if now - max(s.sent_at, last_progress) > self.timeout:
                    del inflight[seq]
                    last_progress = now
                    if not s.request.done:
                        self.counters.timeouts += 1
                        lost = retry_or_lose(s.request, f"timeout ({self.timeout:g} s)")
                        if lost:
                            yield lost
