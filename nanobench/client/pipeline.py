"""Pipelined INFER: up to ``window`` requests in flight, replies matched by sequence number.

docs/PROTOCOL.md, "Pipelining": the device answers in order, so a reply to a later request
means the earlier unanswered ones were lost; they are re-sent at once instead of after a
timeout. Every re-send is a retry (``counters.retries``); every error frame, undecodable frame
and timeout is an error (``counters.errors``). A request that runs out of attempts is yielded
as ``Lost``, never as a result.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nanobench import protocol as proto
from nanocore.errors import UserError

if TYPE_CHECKING:
    from nanobench.client.device import Device

log = logging.getLogger("nanobench.client")

# Error codes after which a re-send can succeed (the bytes were damaged on the way).
TRANSIENT_ERRORS = {
    proto.ErrorCode.BAD_CRC, proto.ErrorCode.BAD_LENGTH, proto.ErrorCode.FRAMING,
    proto.ErrorCode.OVERSIZE, proto.ErrorCode.INVOKE,
}


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


@dataclass
class _Request:
    """One image's request: its encoded body, attempts so far, whether it is settled."""

    index: int
    body: bytes
    attempts: int = 0
    done: bool = False
    last_error: str = ""


@dataclass
class _Send:
    """One copy of a request on the link and when it was written (host seconds)."""

    request: _Request
    sent_at: float


class Pipeline:
    """The state of one pipelined stream; iterate it for one ``Inference`` or ``Lost`` per
    image, in the order the device answers (``.index`` says which image).

    ``rle``: send INFER_RLE (zero-run coded pixels, ~4x fewer bytes) instead of INFER.
    ``outputs``: scores each reply must carry (None: any count). A reply with another count,
    or whose class byte is not the first argmax of its scores, is malformed: an error, re-sent,
    never a result.

    State: ``inflight`` maps sequence number to send, in send order (the order the device
    answers in); ``open_requests`` counts images sent and not yet settled; ``last_progress``
    is when the oldest frame's timeout clock started (the later of its send and the last
    reply)."""

    def __init__(self, device: Device, images: Iterable[object], *, window: int, rle: bool,
                 outputs: int | None) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.device = device
        self.window = window
        self.outputs = outputs
        self.ptype = proto.INFER_RLE if rle else proto.INFER
        self._encode = proto.encode_pixels_rle if rle else proto.encode_pixels
        self._want = self.ptype | proto.REPLY_FLAG
        self._max_attempts = 1 + device.retries
        self._source = enumerate(images)
        self._exhausted = False
        self.inflight: OrderedDict[int, _Send] = OrderedDict()
        self.open_requests = 0
        self.last_progress = time.monotonic()

    def __iter__(self) -> Iterator[Inference | Lost]:
        while True:
            self._fill()
            if self.open_requests == 0:
                return
            packets = self.device.read_packets()
            now = time.monotonic()
            for pkt in packets:
                yield from self._on_packet(pkt, now)
            yield from self._check_timeout(now)

    # -- sending --------------------------------------------------------------------------

    def _fill(self) -> None:
        """Send new images until ``window`` requests are open or the images run out."""
        while not self._exhausted and self.open_requests < self.window:
            try:
                index, pixels = next(self._source)
            except StopIteration:
                self._exhausted = True
                return
            try:
                body = self._encode(pixels)
            except ValueError as exc:
                raise UserError(f"image {index}: {exc}") from None
            self.open_requests += 1
            self._send(_Request(index, body))

    def _send(self, req: _Request) -> None:
        dev = self.device
        if req.attempts:
            dev.counters.retries += 1
        req.attempts += 1
        seq = dev.next_seq()
        if not self.inflight:
            self.last_progress = time.monotonic()  # the timeout counts from here
        self.inflight[seq] = _Send(req, time.monotonic())
        dev.write(proto.encode_request(self.ptype, seq, req.body))
        dev.counters.sent += 1

    def _settle_lost(self, req: _Request, reason: str) -> Lost:
        """Give up on ``req``: it is yielded as lost."""
        req.done = True
        self.open_requests -= 1
        self.device.counters.lost += 1
        return Lost(req.index, reason, req.attempts)

    def _retry_or_lose(self, req: _Request, reason: str) -> Iterator[Lost]:
        """Re-send a request whose frame was lost, unless a copy is still in flight; yields
        ``Lost`` when it has no attempt left."""
        req.last_error = reason
        if any(s.request is req for s in self.inflight.values()):
            return
        if req.attempts < self._max_attempts:
            self._send(req)
            return
        yield self._settle_lost(req, reason)

    # -- receiving ------------------------------------------------------------------------

    def _on_packet(self, pkt: proto.Packet, now: float) -> Iterator[Inference | Lost]:
        dev = self.device
        if pkt.seq not in self.inflight:
            if pkt.is_error:
                # SEQ_NONE: the header was unreadable; the gap check below finds which.
                dev.count_error(pkt)
                dev.raise_fatal(pkt)
            else:
                dev.counters.stale += 1
            return
        self.last_progress = now
        # Every request sent before this one and still unanswered was lost on the way.
        while True:
            seq, s = next(iter(self.inflight.items()))
            if seq == pkt.seq:
                break
            del self.inflight[seq]
            if not s.request.done:
                yield from self._retry_or_lose(s.request, "no reply (later request answered)")
        s = self.inflight.pop(pkt.seq)
        req = s.request
        if req.done:  # answered already through another copy
            dev.counters.stale += 1
            return
        if pkt.type == self._want:
            yield from self._on_reply(pkt, s, now)
        elif pkt.is_error:
            dev.count_error(pkt)
            dev.raise_fatal(pkt)
            reason = f"{proto.error_name(pkt.error_code or 0)} {pkt.error_message}".strip()
            if pkt.error_code in TRANSIENT_ERRORS:
                yield from self._retry_or_lose(req, reason)
            else:
                yield self._settle_lost(req, reason)
        else:
            dev.counters.stale += 1
            yield from self._retry_or_lose(req, f"unexpected reply type 0x{pkt.type:02x}")

    def _on_reply(self, pkt: proto.Packet, s: _Send, now: float) -> Iterator[Inference | Lost]:
        """An INFER reply to an open request: a result, or malformed and re-sent."""
        dev, req = self.device, s.request
        try:
            reply = proto.decode_infer_reply(pkt.body)
        except proto.ProtocolError as exc:
            dev.counters.bad_frames += 1
            yield from self._retry_or_lose(req, f"malformed reply: {exc}")
            return
        problem = reply_problem(reply, self.outputs)
        if problem is not None:
            dev.counters.malformed += 1
            log.debug("malformed INFER reply for image %d: %s", req.index, problem)
            yield from self._retry_or_lose(req, f"malformed reply: {problem}")
            return
        req.done = True
        self.open_requests -= 1
        dev.counters.replies += 1
        # Copies of this request still in flight will be answered: stale then.
        yield Inference(req.index, reply.label, reply.scores, reply.latency_ticks,
                        now - s.sent_at, req.attempts - 1)

    def _check_timeout(self, now: float) -> Iterator[Lost]:
        """Only the oldest frame in flight can time out: the device answers in order, so the
        others wait behind it; the clock restarts at every reply."""
        if not self.inflight:
            return
        seq, s = next(iter(self.inflight.items()))
        if now - max(s.sent_at, self.last_progress) > self.device.timeout:
            del self.inflight[seq]
            self.last_progress = now
            if not s.request.done:
                self.device.counters.timeouts += 1
                yield from self._retry_or_lose(s.request, f"timeout ({self.device.timeout:g} s)")
