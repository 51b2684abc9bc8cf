"""The protocol on both sides against the shared byte vectors (tests/vectors/), plus the
Python API the bench uses. The C side runs as build/host/test_protocol (ASan/UBSan)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from nanobench import protocol as proto

VECTORS = json.loads((Path(__file__).parent / "vectors" / "protocol_vectors.json").read_text())


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def test_vectors_cover_every_section() -> None:
    for key in ("crc32", "cobs", "cobs_invalid", "packets", "packets_invalid", "streams", "rle"):
        assert len(VECTORS[key]) >= 5, key
    assert len(VECTORS["rle_invalid"]) >= 4
    assert VECTORS["max_body"] == proto.MAX_BODY


def test_crc32_vectors() -> None:
    for v in VECTORS["crc32"]:
        assert proto.crc32(h(v["data"])) == v["crc"]


@pytest.mark.parametrize("i", range(len(VECTORS["cobs"])))
def test_cobs_vectors(i: int) -> None:
    v = VECTORS["cobs"][i]
    raw, enc = h(v["decoded"]), h(v["encoded"])
    assert proto.cobs_encode(raw) == enc
    assert proto.cobs_decode(enc) == raw
    assert 0 not in enc
    assert len(enc) <= proto.cobs_max_encoded(len(raw))


def test_cobs_invalid_vectors() -> None:
    for v in VECTORS["cobs_invalid"]:
        with pytest.raises(proto.ProtocolError) as e:
            proto.cobs_decode(h(v["encoded"]))
        assert e.value.code == proto.ErrorCode.FRAMING


def test_packet_vectors() -> None:
    for v in VECTORS["packets"]:
        body = h(v["body"])
        assert proto.build_packet(v["type"], v["seq"], body) == h(v["packet"])
        assert proto.encode_request(v["type"], v["seq"], body) == h(v["frame"])
        pkt = proto.parse_packet(h(v["packet"]))
        assert (pkt.type, pkt.seq, pkt.body) == (v["type"], v["seq"], body)


def test_invalid_packet_vectors() -> None:
    for v in VECTORS["packets_invalid"]:
        with pytest.raises(proto.ProtocolError) as e:
            proto.parse_packet(h(v["packet"]))
        assert (e.value.code, e.value.seq) == (v["error"], v["seq"]), v["why"]


def test_rle_vectors() -> None:
    for v in VECTORS["rle"]:
        px, rle = h(v["pixels"]), h(v["rle"])
        assert proto.encode_pixels_rle(px) == rle, v["kind"]
        assert proto.decode_pixels_rle(rle) == px
    for v in VECTORS["rle_invalid"]:
        with pytest.raises(proto.ProtocolError) as e:
            proto.decode_pixels_rle(h(v["rle"]))
        assert e.value.code == proto.ErrorCode.INPUT_SIZE, v["why"]


def _events(decoder: proto.FrameDecoder, stream: bytes, chunking: str, rng: random.Random) -> list:
    out = []
    if chunking == "whole":
        return decoder.feed(stream)
    i = 0
    while i < len(stream):
        n = 1 if chunking == "bytes" else rng.randint(1, 300)
        out += decoder.feed(stream[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("chunking", ["whole", "bytes", "random"])
def test_stream_vectors(chunking: str) -> None:
    rng = random.Random(1)
    for v in VECTORS["streams"]:
        got = _events(proto.FrameDecoder(), h(v["stream"]), chunking, rng)
        assert len(got) == len(v["events"])
        for ev, want in zip(got, v["events"], strict=True):
            if want["kind"] == "frame":
                assert isinstance(ev, proto.Packet)
                assert proto.build_packet(ev.type, ev.seq, ev.body) == h(want["data"])
            else:
                assert isinstance(ev, proto.BadFrame)
                assert ev.error == {"framing": proto.ErrorCode.FRAMING,
                                    "oversize": proto.ErrorCode.OVERSIZE}[want["kind"]]


def _flatten(vectors: dict) -> str:
    """The JSON vectors as the line records test_protocol.c reads (see its header)."""
    def x(s: str) -> str:
        return s or "-"
    lines = [f"crc {x(v['data'])} {v['crc']}" for v in vectors["crc32"]]
    lines += [f"cobs {x(v['decoded'])} {v['encoded']}" for v in vectors["cobs"]]
    lines += [f"cobs_bad {v['encoded']}" for v in vectors["cobs_invalid"]]
    lines += [f"packet {v['type']} {v['seq']} {x(v['body'])} {v['packet']} {v['frame']}"
              for v in vectors["packets"]]
    lines += [f"packet_bad {x(v['packet'])} {v['error']} {v['seq']}"
              for v in vectors["packets_invalid"]]
    for v in vectors["streams"]:
        evs = [f"f:{e['data']}" if e["kind"] == "frame" else e["kind"] for e in v["events"]]
        lines.append(" ".join(["stream", v["stream"], *evs]))
    lines += [f"rle {v['pixels']} {v['rle']}" for v in vectors["rle"]]
    lines += [f"rle_bad {v['rle']}" for v in vectors["rle_invalid"]]
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (make setup)")
def test_c_side_against_the_same_vectors() -> None:
    from nanobench.firmware import build_protocol_test

    exe = build_protocol_test()
    text = _flatten(VECTORS)
    proc = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr == ""  # a sanitizer report would land here
    last = proc.stdout.strip().splitlines()[-1]
    passed = int(last.split(":")[1].split("passed")[0])
    assert " 0 failed" in last and passed > 100, last
    # The C test must be able to fail: a corrupted vector is caught.
    broken = text.replace("crc 313233343536373839 3421780262", "crc 313233343536373839 1", 1)
    assert broken != text
    proc = subprocess.run([str(exe)], input=broken, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 1 and "FAIL" in proc.stdout


def test_roundtrip_random_packets() -> None:
    rng = random.Random(7)
    frames = []
    for _ in range(200):
        body = bytes(rng.choice([0, rng.randrange(256)]) for _ in range(rng.randrange(0, 1025)))
        t, s = rng.randrange(256), rng.randrange(65536)
        frames.append((t, s, body))
    stream = b"".join(proto.encode_request(t, s, b) for t, s, b in frames)
    got = proto.FrameDecoder().feed(stream)
    assert [(p.type, p.seq, p.body) for p in got] == frames


def test_log_lines_and_noise_are_told_apart() -> None:
    d = proto.FrameDecoder()
    boot = b"\x00nano-tflm fw=0.1.0 proto=1 board=host backend=aot model=0123456789abcdef\n\x00"
    reply = proto.encode_request(proto.HELLO | proto.REPLY_FLAG, 3, b"fw=0.1.0")
    evs = d.feed(boot + b"\x01\x02\xff\xfe\x00" + reply)
    assert evs[0] == proto.LogLine("nano-tflm fw=0.1.0 proto=1 board=host backend=aot "
                               "model=0123456789abcdef")
    assert isinstance(evs[1], proto.BadFrame)
    assert isinstance(evs[2], proto.Packet) and evs[2].seq == 3


def test_decoder_memory_is_bounded() -> None:
    d = proto.FrameDecoder(max_frame=2000)
    assert d.feed(b"\x07" * 100_000) == []
    assert d.pending <= 2000
    evs = d.feed(b"\x00" + proto.encode_request(proto.STATS | proto.REPLY_FLAG, 9))
    assert isinstance(evs[0], proto.BadFrame) and evs[0].error == proto.ErrorCode.OVERSIZE
    assert isinstance(evs[1], proto.Packet) and evs[1].seq == 9


def test_infer_reply_and_info_helpers() -> None:
    body = proto.encode_infer_reply(7, [-17, -48, 24, 44, -45, 1, -60, 95, 19, 16], 123456)
    r = proto.decode_infer_reply(body)
    assert r == proto.InferReply(7, (-17, -48, 24, 44, -45, 1, -60, 95, 19, 16), 123456)
    with pytest.raises(proto.ProtocolError):
        proto.decode_infer_reply(body[:-1])
    assert proto.decode_info(b"fw=0.1.0\nproto=1\njunk\nboard=host\n") == {
        "fw": "0.1.0", "proto": "1", "board": "host"}
    err = proto.Packet(type=proto.ERROR, seq=1, body=b"\x04expected 784")
    assert err.is_error and err.error_code == proto.ErrorCode.INPUT_SIZE
    assert err.error_message == "expected 784"
    assert proto.error_name(1) == "ERR_BAD_CRC" and proto.error_name(99) == "ERR_99"


def test_encode_pixels() -> None:
    np = pytest.importorskip("numpy")
    img = np.arange(784, dtype=np.uint8).reshape(28, 28)
    assert proto.encode_pixels(img) == img.tobytes()
    assert proto.encode_pixels(list(range(10)) * 78 + [0, 0, 0, 0]) == bytes(
        list(range(10)) * 78 + [0, 0, 0, 0])
    with pytest.raises(ValueError):
        proto.encode_pixels(np.zeros((28, 28), np.float32))
    with pytest.raises(ValueError):
        proto.encode_pixels(bytes(783))
    with pytest.raises(ValueError):
        proto.build_packet(proto.INFER, 1, bytes(proto.MAX_BODY + 1))
