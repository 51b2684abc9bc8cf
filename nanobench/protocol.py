"""nano-tflm serial protocol, version 1: the host side.

The specification is ``docs/PROTOCOL.md``; ``firmware/lib/benchcore/protocol.h`` is the C side.
Both are tested against the test suite's byte vectors (``protocol_vectors.json``).

On the wire every frame is ``COBS(packet) + b"\\x00"``. A packet is::

    u8 version | u8 type | u16le seq | u16le body_len | body | u32le crc32(all bytes before)

Typical host use::

    frame = encode_request(INFER, seq=7, body=encode_pixels(image))   # bytes to write
    frame = encode_request(INFER_RLE, 7, encode_pixels_rle(image))    # same, ~4x fewer bytes
    decoder = FrameDecoder()
    for event in decoder.feed(port.read(4096)):                       # bytes read so far
        if isinstance(event, Packet) and event.type in (INFER | REPLY_FLAG, INFER_RLE | REPLY_FLAG):
            result = decode_infer_reply(event.body)                   # InferReply
        elif isinstance(event, Packet) and event.is_error:
            event.error_code, event.error_message                     # ErrorCode, str
        elif isinstance(event, LogLine):
            ...                                                       # boot line, self-test text
        elif isinstance(event, BadFrame):
            ...                                                       # line noise: count it
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

VERSION = 1
HEADER_BYTES = 6
CRC_BYTES = 4
OVERHEAD_BYTES = HEADER_BYTES + CRC_BYTES
MAX_BODY = 1024
"""Largest body either side sends or accepts, in bytes (``PROTO_MAX_BODY``)."""
MAX_PACKET = MAX_BODY + OVERHEAD_BYTES
SEQ_NONE = 0xFFFF
"""Sequence number of an error reply whose request header could not be read."""

HELLO = 0x01
INFER = 0x02
STATS = 0x03
RESET = 0x04
SELFTEST = 0x05
INFER_RLE = 0x06
"""INFER with the pixels zero-run-length coded (``encode_pixels_rle``); reply ``0x86``, same body
as INFER's. ~216 instead of 796 bytes per MNIST request (mean over the test set): use it when
HELLO says ``infer_rle=1``, since the link is the bottleneck under emulation."""
REQUEST_TYPES = (HELLO, INFER, STATS, RESET, SELFTEST, INFER_RLE)
REPLY_FLAG = 0x80
"""A reply's type is its request's type ``| REPLY_FLAG``."""
ERROR = 0x7F

INPUT_PIXELS = 28 * 28
"""INFER request body: 784 uint8 pixels, row-major 28x28, 0 = background."""


class ErrorCode(enum.IntEnum):
    """Error codes carried in the first body byte of an ``ERROR`` packet."""

    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_COMMAND = 3
    INPUT_SIZE = 4
    NOT_READY = 5
    VERSION = 6
    FRAMING = 7
    OVERSIZE = 8
    INVOKE = 9


class ProtocolError(ValueError):
    """Bytes that are not a valid frame or packet. ``code`` is the matching ``ErrorCode`` and
    ``seq`` the packet's sequence number when at least 4 bytes were there, else ``SEQ_NONE``."""

    def __init__(self, code: ErrorCode, message: str, seq: int = SEQ_NONE) -> None:
        super().__init__(message)
        self.code = code
        self.seq = seq


def cobs_max_encoded(n: int) -> int:
    """Largest COBS encoding of ``n`` bytes, delimiter not included."""
    return n + (n + 253) // 254 + (1 if n == 0 else 0)


MAX_FRAME = cobs_max_encoded(MAX_PACKET) + 1
"""Largest frame on the wire, delimiter included, in bytes."""


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as ``zlib.crc32``) of ``data``, as an unsigned 32-bit int."""
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no delimiter). The result contains no 0x00 byte.

    A run of 254 non-zero bytes that ends the data is not followed by an extra code byte
    (as in Cheshire & Baker's paper), so 254 non-zero bytes encode to 255 bytes.
    """
    out = bytearray()
    block = bytearray()
    for i, b in enumerate(data):
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
                if i + 1 == len(data):
                    return bytes(out)
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS block (without delimiter). Raises ``ProtocolError(FRAMING)`` on a 0x00
    inside or a code byte that points past the end."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0:
            raise ProtocolError(ErrorCode.FRAMING, "COBS: zero byte inside a frame")
        run = code - 1
        if run > n - i:
            raise ProtocolError(ErrorCode.FRAMING, "COBS: block runs past the end of the frame")
        chunk = data[i : i + run]
        if 0 in chunk:
            raise ProtocolError(ErrorCode.FRAMING, "COBS: zero byte inside a frame")
        out += chunk
        i += run
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def build_packet(ptype: int, seq: int, body: bytes = b"") -> bytes:
    """Packet bytes (header, body, CRC), not COBS-encoded.

    Raises ``ValueError`` when ``body`` is longer than ``MAX_BODY`` or ``seq``/``ptype`` are
    out of range.
    """
    body = bytes(body)
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes is longer than the {MAX_BODY}-byte maximum")
    if not 0 <= seq <= 0xFFFF or not 0 <= ptype <= 0xFF:
        raise ValueError(f"seq {seq} or type {ptype} out of range")
    head = struct.pack("<BBHH", VERSION, ptype, seq, len(body)) + body
    return head + struct.pack("<I", crc32(head))


def encode_frame(packet: bytes) -> bytes:
    """COBS-encode a packet and append the 0x00 delimiter: the bytes to write to the port."""
    return cobs_encode(packet) + b"\x00"


def encode_request(ptype: int, seq: int, body: bytes = b"") -> bytes:
    """The complete frame for a request (or any packet): ``COBS(build_packet(...)) + 0x00``.

    ``ptype`` is one of ``HELLO``, ``INFER``, ``STATS``, ``RESET``, ``SELFTEST``; ``seq`` is
    0..65535 (0xFFFF is best avoided: the device uses it in error replies to unreadable
    requests); ``body`` as in docs/PROTOCOL.md (``encode_pixels`` for INFER).
    """
    return encode_frame(build_packet(ptype, seq, body))


@dataclass(frozen=True)
class Packet:
    """A valid packet (CRC checked). ``type`` is e.g. ``INFER | REPLY_FLAG`` or ``ERROR``."""

    type: int
    seq: int
    body: bytes
    version: int = VERSION

    @property
    def is_error(self) -> bool:
        """True for an ERROR packet."""
        return self.type == ERROR

    @property
    def error_code(self) -> ErrorCode | int | None:
        """The error code of an ERROR packet (an ``ErrorCode`` when known), else None."""
        if not self.is_error or not self.body:
            return None
        try:
            return ErrorCode(self.body[0])
        except ValueError:
            return self.body[0]

    @property
    def error_message(self) -> str:
        """The ASCII message after an ERROR packet's code (may be empty)."""
        if not self.is_error:
            return ""
        return self.body[1:].decode("ascii", "replace")


@dataclass(frozen=True)
class LogLine:
    """A chunk between delimiters that is printable text (boot line, self-test line)."""

    text: str


@dataclass(frozen=True)
class BadFrame:
    """A chunk that is neither a valid packet nor text: line noise, a truncated or corrupted
    frame. ``error`` says why (the code the device would answer with), ``raw`` holds at most the
    first ``MAX_FRAME`` bytes, ``seq`` is the sequence number if the header could be read."""

    raw: bytes
    error: ErrorCode
    seq: int = SEQ_NONE


Event = Packet | LogLine | BadFrame


def parse_packet(buf: bytes) -> Packet:
    """Check a decoded packet and return it. Raises ``ProtocolError`` with the code the device
    answers: size < 10 (BAD_LENGTH), version (VERSION), length field vs size (BAD_LENGTH), CRC
    (BAD_CRC), in that order. The type is not checked."""
    buf = bytes(buf)
    seq = struct.unpack_from("<H", buf, 2)[0] if len(buf) >= 4 else SEQ_NONE
    if len(buf) < OVERHEAD_BYTES:
        raise ProtocolError(ErrorCode.BAD_LENGTH, f"packet of {len(buf)} bytes is too short", seq)
    version, ptype, seq, body_len = struct.unpack_from("<BBHH", buf, 0)
    if version != VERSION:
        raise ProtocolError(ErrorCode.VERSION, f"protocol version {version}, expected {VERSION}",
                            seq)
    if body_len > MAX_BODY or body_len + OVERHEAD_BYTES != len(buf):
        raise ProtocolError(ErrorCode.BAD_LENGTH,
                            f"length field {body_len} disagrees with a {len(buf)}-byte packet", seq)
    n = HEADER_BYTES + body_len
    if crc32(buf[:n]) != struct.unpack_from("<I", buf, n)[0]:
        raise ProtocolError(ErrorCode.BAD_CRC, "CRC mismatch", seq)
    return Packet(type=ptype, seq=seq, body=buf[HEADER_BYTES:n], version=version)


def _is_text(chunk: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in chunk)


def _decoded_len(chunk: bytes) -> int:
    """Bytes a streaming COBS decoder (the device's) has produced by the end of ``chunk``, also
    for a chunk cut short: data bytes plus the implied zeros between blocks."""
    i = out = 0
    prev = None
    while i < len(chunk):
        code = chunk[i]
        if prev is not None and prev != 0xFF:
            out += 1
        avail = min(code - 1, len(chunk) - i - 1)
        out += avail
        i += 1 + avail
        prev = code
    return out


def decode_chunk(chunk: bytes) -> bytes:
    """Decode the bytes between two delimiters the way the device's receiver does: raises
    ``ProtocolError(OVERSIZE)`` when the decoded packet would exceed ``MAX_PACKET`` (checked
    first, as the device stops storing bytes then), ``ProtocolError(FRAMING)`` for bad COBS."""
    if _decoded_len(chunk) > MAX_PACKET:
        raise ProtocolError(ErrorCode.OVERSIZE, f"frame longer than {MAX_PACKET} bytes")
    return cobs_decode(chunk)


def classify_chunk(chunk: bytes) -> Event:
    """Turn the bytes between two delimiters into a ``Packet``, ``LogLine`` or ``BadFrame``.

    A printable chunk is never a valid packet (a packet's first decoded byte, the version 1,
    is not printable), so the order of the checks does not matter for valid traffic.
    """
    try:
        return parse_packet(decode_chunk(chunk))
    except ProtocolError as e:
        if _is_text(chunk):
            return LogLine(chunk.decode("ascii").rstrip("\r\n"))
        return BadFrame(raw=bytes(chunk[:MAX_FRAME]), error=e.code, seq=e.seq)


class FrameDecoder:
    """Streaming splitter for bytes read from the device.

    Feed it whatever the port returned (any chunking, a byte at a time or bursts); it returns
    the events completed by those bytes, in order: ``Packet`` (valid, CRC-checked), ``LogLine``
    (printable text such as the boot line), ``BadFrame`` (noise). Empty frames (two delimiters
    in a row) are skipped. A chunk longer than ``max_frame`` bytes is cut off (its start is
    kept for the BadFrame, with error ``OVERSIZE``) so memory stays bounded on a noisy line.
    """

    def __init__(self, max_frame: int = 4 * MAX_FRAME) -> None:
        self._buf = bytearray()
        self._overflow = False
        self._max = max_frame

    def feed(self, data: bytes | Iterable[int]) -> list[Event]:
        """Take more received bytes; return the events they complete (maybe none)."""
        events: list[Event] = []
        data = bytes(data)
        start = 0
        while True:
            end = data.find(b"\x00", start)
            piece = data[start:] if end < 0 else data[start:end]
            room = self._max - len(self._buf)
            if len(piece) > room:
                self._buf += piece[:max(room, 0)]
                self._overflow = True
            else:
                self._buf += piece
            if end < 0:
                return events
            if self._overflow:
                events.append(BadFrame(raw=bytes(self._buf[:MAX_FRAME]),
                                       error=ErrorCode.OVERSIZE))
            elif self._buf:
                events.append(classify_chunk(bytes(self._buf)))
            self._buf.clear()
            self._overflow = False
            start = end + 1

    @property
    def pending(self) -> int:
        """Bytes received since the last delimiter (a frame in progress)."""
        return len(self._buf)


@dataclass(frozen=True)
class InferReply:
    """Body of an INFER reply: ``label`` (argmax class chosen on the device), ``scores`` (the
    int8 output vector, length n), ``latency_ticks`` (device ticks around invoke only; convert
    with the HELLO info's ``tick_hz`` / ``ticks_to_units``)."""

    label: int
    scores: tuple[int, ...]
    latency_ticks: int


def decode_infer_reply(body: bytes) -> InferReply:
    """Parse an INFER reply body: ``u8 class, u8 n, i8 scores[n], u32le latency_ticks``.
    Raises ``ProtocolError(BAD_LENGTH)`` if the size does not match ``n``."""
    body = bytes(body)
    if len(body) < 2 or len(body) != 2 + body[1] + 4:
        raise ProtocolError(ErrorCode.BAD_LENGTH, f"INFER reply of {len(body)} bytes is malformed")
    n = body[1]
    scores = struct.unpack_from(f"<{n}b", body, 2)
    (latency,) = struct.unpack_from("<I", body, 2 + n)
    return InferReply(label=body[0], scores=tuple(scores), latency_ticks=latency)


def encode_infer_reply(label: int, scores: Iterable[int], latency_ticks: int) -> bytes:
    """Inverse of ``decode_infer_reply`` (for fake devices in tests)."""
    s = list(scores)
    return struct.pack(f"<BB{len(s)}bI", label, len(s), *s, latency_ticks)


def encode_pixels(pixels: object) -> bytes:
    """INFER request body from 784 uint8 pixels (bytes, a list, or an array of shape (28, 28)
    or (784,), dtype uint8, row-major, 0 = background). Raises ``ValueError`` on another size
    or on values outside 0..255."""
    if isinstance(pixels, bytes | bytearray | memoryview):
        data = bytes(pixels)
    else:
        tobytes = getattr(pixels, "tobytes", None)
        dtype = getattr(pixels, "dtype", None)
        if tobytes is not None and dtype is not None:
            if str(dtype) != "uint8":
                raise ValueError(f"pixels must be uint8, got {dtype}")
            data = tobytes()
        else:
            data = bytes(list(pixels))  # type: ignore[call-overload]
    if len(data) != INPUT_PIXELS:
        raise ValueError(f"an image has {INPUT_PIXELS} pixels (28x28), got {len(data)}")
    return data


def encode_pixels_rle(pixels: object) -> bytes:
    """INFER_RLE request body from 784 uint8 pixels (anything ``encode_pixels`` takes): each
    non-zero pixel is one byte; a run of n zero pixels (1..255) is ``0x00, n``."""
    data = encode_pixels(pixels)
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        if data[i]:
            out.append(data[i])
            i += 1
            continue
        j = i
        while j < n and data[j] == 0 and j - i < 255:
            j += 1
        out += bytes((0, j - i))
        i = j
    return bytes(out)


def decode_pixels_rle(body: bytes, max_pixels: int = INPUT_PIXELS) -> bytes:
    """Inverse of ``encode_pixels_rle`` (for fake devices and tests), as the device decodes:
    raises ``ProtocolError(INPUT_SIZE)`` on a zero run of length 0, a missing count, or more
    than ``max_pixels`` pixels. Does not check the total (the device does)."""
    out = bytearray()
    body = bytes(body)
    i = 0
    while i < len(body):
        b = body[i]
        if b:
            out.append(b)
        else:
            i += 1
            if i >= len(body) or body[i] == 0:
                raise ProtocolError(ErrorCode.INPUT_SIZE, "bad zero run in INFER_RLE body")
            out += bytes(body[i])
        if len(out) > max_pixels:
            raise ProtocolError(ErrorCode.INPUT_SIZE, f"more than {max_pixels} pixels")
        i += 1
    return bytes(out)


def decode_info(body: bytes) -> dict[str, str]:
    """Parse an info text (HELLO/STATS reply body): ``key=value`` lines separated by ``\\n``.
    Values stay strings; lines without ``=`` are ignored."""
    info: dict[str, str] = {}
    for line in bytes(body).decode("ascii", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip()] = value.strip()
    return info


def error_name(code: int) -> str:
    """``"ERR_BAD_CRC"`` for 1 etc.; ``"ERR_<code>"`` for unknown codes."""
    try:
        return f"ERR_{ErrorCode(code).name}"
    except ValueError:
        return f"ERR_{code}"
