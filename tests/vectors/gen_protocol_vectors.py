"""Generate tests/vectors/protocol_vectors.json: byte vectors for both protocol implementations.

Run once (the JSON is committed): ``python tests/vectors/gen_protocol_vectors.py``.
The vectors are computed here with deliberately different code from both implementations
(COBS by splitting at zeros, packets with struct, CRC with zlib), plus COBS examples from the
COBS paper / Wikipedia written out by hand, so neither side is checked against itself.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

OUT = Path(__file__).with_name("protocol_vectors.json")
MAX_BODY = 1024
MAX_PACKET = MAX_BODY + 10


def ref_cobs(data: bytes) -> bytes:
    """COBS by splitting at zero bytes, then cutting each piece into 254-byte blocks."""
    out = bytearray()
    pieces = data.split(b"\x00")
    for k, piece in enumerate(pieces):
        last_piece = k == len(pieces) - 1
        while len(piece) >= 254:
            out.append(0xFF)
            out += piece[:254]
            piece = piece[254:]
            if not piece and last_piece:
                return bytes(out)  # data ended on a full block: no trailing code byte
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def ref_packet(ptype: int, seq: int, body: bytes, version: int = 1) -> bytes:
    head = struct.pack("<BBHH", version, ptype, seq, len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)


# Wikipedia "Consistent Overhead Byte Stuffing", encoding examples 1-10 (hand-copied).
_block = bytes(range(1, 255))
WIKI_COBS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (_block, b"\xff" + _block),
    (b"\x00" + _block, b"\x01\xff" + _block),
    (bytes(range(1, 256)), b"\xff" + _block + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


def main() -> None:
    rng = random.Random(20261128)
    for raw, enc in WIKI_COBS:
        assert ref_cobs(raw) == enc, raw.hex()

    cobs = [{"decoded": raw.hex(), "encoded": enc.hex(), "source": "wikipedia"}
            for raw, enc in WIKI_COBS]
    cobs.append({"decoded": "", "encoded": "01", "source": "empty"})
    for n in (1, 2, 253, 254, 255, 507, 508, 509, 1034):
        for zero_share in (0.0, 0.3):
            raw = bytes(0 if rng.random() < zero_share else rng.randrange(1, 256)
                        for _ in range(n))
            cobs.append({"decoded": raw.hex(), "encoded": ref_cobs(raw).hex(), "source": "random"})

    crc = [{"data": d.hex(), "crc": zlib.crc32(d) & 0xFFFFFFFF}
           for d in (b"", b"a", b"123456789", bytes(256), bytes(range(256)) * 4)]
    assert crc[2]["crc"] == 0xCBF43926  # the CRC-32 check value

    packets = []
    cases = [(0x01, 0, b""), (0x01, 1, b""), (0x03, 0xFFFE, b""), (0x04, 0x1234, b""),
             (0x05, 77, b""), (0x7F, 0xFFFF, b"\x02bad length"),
             (0x81, 1, b"fw=0.1.0\nproto=1\nboard=host\n"),
             (0x82, 9, struct.pack("<BB10bI", 7, 10, -17, -48, 24, 44, -45, 1, -60, 95, 19, 16,
                                   123456)),
             (0x02, 2, bytes(784)),
             (0x02, 3, bytes(rng.randrange(256) for _ in range(784))),
             (0x02, 0x0100, bytes(range(256)) * 3 + bytes(16)),
             (0x02, 4, bytes(rng.randrange(256) for _ in range(MAX_BODY)))]
    for ptype, seq, body in cases:
        pkt = ref_packet(ptype, seq, body)
        packets.append({"type": ptype, "seq": seq, "body": body.hex(), "packet": pkt.hex(),
                        "frame": (ref_cobs(pkt) + b"\x00").hex()})

    good = ref_packet(0x01, 0x0A0B, b"")
    infer = ref_packet(0x02, 0x0C0D, bytes(784))
    invalid = [
        {"packet": "", "error": 2, "seq": 0xFFFF, "why": "empty"},
        {"packet": "010102", "error": 2, "seq": 0xFFFF, "why": "3 bytes"},
        {"packet": good[:9].hex(), "error": 2, "seq": 0x0A0B, "why": "9 bytes"},
        {"packet": (b"\x02" + good[1:]).hex(), "error": 6, "seq": 0x0A0B, "why": "version 2"},
        {"packet": (good[:4] + b"\x01\x00" + good[6:]).hex(), "error": 2, "seq": 0x0A0B,
         "why": "length field 1, no body"},
        {"packet": (good + b"\x00").hex(), "error": 2, "seq": 0x0A0B, "why": "one extra byte"},
        {"packet": (good[:-1] + bytes([good[-1] ^ 0x80])).hex(), "error": 1, "seq": 0x0A0B,
         "why": "CRC bit flipped"},
        {"packet": (infer[:100] + bytes([infer[100] ^ 1]) + infer[101:]).hex(), "error": 1,
         "seq": 0x0C0D, "why": "body bit flipped"},
        {"packet": infer[:-4].hex(), "error": 2, "seq": 0x0C0D, "why": "CRC missing"},
        {"packet": ref_packet(0x02, 5, bytes(MAX_BODY + 1)).hex(), "error": 2, "seq": 5,
         "why": "body longer than PROTO_MAX_BODY"},
    ]
    bad_cobs = [
        {"encoded": "00", "why": "zero inside"},
        {"encoded": "05112233", "why": "block runs past the end"},
        {"encoded": "0311", "why": "block runs past the end"},
        {"encoded": "0211000133", "why": "zero inside"},
        {"encoded": "ff" + "01" * 10, "why": "full block cut short"},
    ]

    # Byte streams for the streaming receivers, with the events each must report in order.
    # kind: frame (decoded bytes given), framing, oversize. Empty frames give no event.
    f1 = ref_cobs(good) + b"\x00"
    f2 = ref_cobs(infer) + b"\x00"
    # Random non-zero body: the COBS blocks are full (254 bytes), so a cut at byte 300 lands
    # inside a block and the receiver must see a framing error, not a short packet.
    f3 = ref_cobs(ref_packet(0x02, 0x0C0E, bytes(rng.randrange(1, 256) for _ in range(784))))
    assert f3[0] == 0xFF and len(f3) > 300
    huge = ref_cobs(ref_packet(0x02, 6, bytes(MAX_BODY + 1))) + b"\x00"
    streams = [
        {"stream": (f1 + f2).hex(),
         "events": [{"kind": "frame", "data": good.hex()}, {"kind": "frame", "data": infer.hex()}]},
        {"stream": (b"\x00\x00" + f1 + b"\x00").hex(),
         "events": [{"kind": "frame", "data": good.hex()}]},
        {"stream": (f3[:300] + b"\x00" + f1).hex(),
         "events": [{"kind": "framing"}, {"kind": "frame", "data": good.hex()}]},
        {"stream": (huge + f1).hex(),
         "events": [{"kind": "oversize"}, {"kind": "frame", "data": good.hex()}]},
        {"stream": (b"\x05\x01\x02" + b"\x00" + f1).hex(),
         "events": [{"kind": "framing"}, {"kind": "frame", "data": good.hex()}]},
        {"stream": (b"\xff" * 3000 + b"\x00" + f2).hex(),
         "events": [{"kind": "oversize"}, {"kind": "frame", "data": infer.hex()}]},
    ]

    # INFER_RLE bodies, coded here with itertools.groupby (the implementations use loops).
    import itertools

    def ref_rle(px: bytes) -> bytes:
        out = bytearray()
        for value, group in itertools.groupby(px):
            n = len(list(group))
            if value:
                out += bytes([value]) * n
            else:
                while n:
                    k = min(n, 255)
                    out += bytes([0, k])
                    n -= k
        return out

    rle = []
    for kind in ("zeros", "full", "digit", "random", "runs"):
        if kind == "zeros":
            px = bytes(784)
        elif kind == "full":
            px = bytes(rng.randrange(1, 256) for _ in range(784))
        elif kind == "digit":
            px = bytearray(784)
            for r in range(6, 22):
                for c in range(10 + r % 3, 16 + r % 5):
                    px[r * 28 + c] = rng.randrange(1, 256)
            px = bytes(px)
        elif kind == "random":
            px = bytes(rng.choice([0, 0, 0, rng.randrange(256)]) for _ in range(784))
        else:
            px = bytes(300) + b"\x07" + bytes(255) + b"\x09" + bytes(227)
        rle.append({"pixels": px.hex(), "rle": ref_rle(px).hex(), "kind": kind})
    rle_invalid = [
        {"rle": "00", "why": "missing count"},
        {"rle": "0000", "why": "zero-length run"},
        {"rle": "01" * 785, "why": "785 pixels"},
        {"rle": "00ff00ff00ff0014", "why": "785 zeros"},
    ]

    doc = {
        "comment": "generated by tests/vectors/gen_protocol_vectors.py; do not edit",
        "max_body": MAX_BODY,
        "crc32": crc,
        "cobs": cobs,
        "cobs_invalid": bad_cobs,
        "packets": packets,
        "packets_invalid": invalid,
        "streams": streams,
        "rle": rle,
        "rle_invalid": rle_invalid,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
