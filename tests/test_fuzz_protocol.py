"""Fuzzing the firmware's protocol handling on the host build under ASan/UBSan.

Random bytes, mutated, truncated and oversize frames, slow dribbles and bursts go to the host
firmware over pipes. After each, the device must have answered every non-empty chunk with
exactly one ERROR frame, then answer a valid INFER correctly (resynchronisation), and at the
end exit cleanly with no sanitizer report. Seeded; the whole module runs in well under 60 s.

Builds: the TEST-ONLY stand-in backend (always; expected scores from its Python twin) and the
real AOT backend of the committed model (when firmware/lib/model/ holds it; expected scores from
a clean run of the same binary — tests/test_firmware_host.py checks those against the TFLM
reference).
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import time
from collections.abc import Callable

import numpy as np
import pytest
from _firmware_proc import FirmwareProc

from nanobench import firmware
from nanobench import protocol as proto
from nanocore.errors import UserError

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")

ERROR_CODES = set(proto.ErrorCode)
N_IMAGES = 6


def _standin_module():
    spec = importlib.util.spec_from_file_location("standin", firmware.STANDIN_DIR / "standin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(44)
    imgs = rng.integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8)
    imgs[0] = 0
    imgs[1, 8:20, 12:16] = 255  # a crude "1" on black
    return imgs


def _infer_all(exe, images: np.ndarray) -> np.ndarray:
    with FirmwareProc([str(exe)]) as fw:
        out = []
        for i, img in enumerate(images):
            r = fw.request(proto.INFER, i, proto.encode_pixels(img))
            assert r.type == proto.INFER | proto.REPLY_FLAG, r
            out.append(proto.decode_infer_reply(r.body).scores)
    return np.array(out, np.int8)


@pytest.fixture(scope="module", params=["standin", "aot"])
def build(request, images) -> tuple[object, np.ndarray]:
    """(executable, expected int8 scores (N_IMAGES, K) for ``images``)."""
    if request.param == "standin":
        exe = firmware.build_host(standin=True)
        return exe, _standin_module().run(images)
    try:
        firmware.check_model_dir()
    except UserError as e:
        pytest.skip(f"no exported default model yet: {e}")
    exe = firmware.build_host()
    return exe, _infer_all(exe, images)


@pytest.fixture
def device(build):
    """A fresh firmware process; at teardown: clean exit, no sanitizer output."""
    exe, _ = build
    fw = FirmwareProc([str(exe)])
    assert fw.wait(lambda evs: any(isinstance(e, proto.LogLine) for e in evs), 10), "no boot line"
    boot = fw.take()
    assert isinstance(boot[0], proto.LogLine) and boot[0].text.startswith("nano-tflm fw=")
    yield fw
    rc = fw.close()
    err = fw.stderr_text()
    assert rc == 0 and err == "", f"exit {rc}, stderr:\n{err[-4000:]}"


def _chunks(data: bytes) -> int:
    """Non-empty chunks the device sees in ``data`` (which ends with a delimiter)."""
    return sum(1 for c in data.split(b"\x00")[:-1] if c)


def _infer_frame(seq: int, image: np.ndarray) -> bytes:
    """INFER for even, INFER_RLE for odd sequence numbers: both paths get fuzzed."""
    if seq % 2:
        return proto.encode_request(proto.INFER_RLE, seq, proto.encode_pixels_rle(image))
    return proto.encode_request(proto.INFER, seq, proto.encode_pixels(image))


def _check_resync(fw: FirmwareProc, build, images, garbage: bytes, seq: int,
                  send: Callable[[bytes], None] | None = None) -> list[proto.Packet]:
    """Send garbage + delimiter, then one valid INFER; check one error per chunk, then the
    right answer. Returns the error packets."""
    _, expected = build
    data = garbage + b"\x00"
    k = seq % len(images)
    (send or fw.send)(data)
    fw.send(_infer_frame(seq, images[k]))
    want = _chunks(data) + 1
    ok = fw.wait(lambda evs: any(isinstance(e, proto.Packet) and e.seq == seq
                                 and not e.is_error for e in evs), 15)
    evs = fw.take()
    assert ok, f"no INFER reply after garbage of {len(garbage)} bytes; last events {evs[-3:]}"
    assert not [e for e in evs if not isinstance(e, proto.Packet)], "device sent a non-frame"
    assert len(evs) == want, f"{len(evs)} replies for {want - 1} chunks + 1 request"
    errors, reply = evs[:-1], evs[-1]
    assert all(e.is_error and e.error_code in ERROR_CODES for e in errors), errors[:3]
    assert reply.seq == seq
    assert reply.type == (proto.INFER_RLE if seq % 2 else proto.INFER) | proto.REPLY_FLAG
    got = proto.decode_infer_reply(reply.body)
    assert got.scores == tuple(int(v) for v in expected[k])
    assert got.label == int(np.argmax(expected[k]))
    return errors


def test_hello_and_infer_are_correct(device, build, images):
    info = proto.decode_info(device.request(proto.HELLO, 1).body)
    assert info["proto"] == str(proto.VERSION) and info["ready"] == "1"
    assert info["input_shape"] == "1x28x28x1"
    _check_resync(device, build, images, b"", 2)


def test_random_bytes(device, build, images):
    rng = random.Random(1)
    for i in range(40):
        n = rng.choice([1, 5, 50, 500, 3000])
        zero_share = rng.choice([0.0, 0.01, 0.2])
        garbage = bytes(0 if rng.random() < zero_share else rng.randrange(1, 256)
                        for _ in range(n))
        _check_resync(device, build, images, garbage, 100 + i)


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame[:-1])  # without its delimiter; the caller adds one
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "set", "delete", "insert", "dup", "swap"])
        i = rng.randrange(len(b))
        if op == "flip":
            b[i] ^= 1 << rng.randrange(8)
        elif op == "set":
            b[i] = rng.randrange(256)
        elif op == "delete":
            del b[i]
        elif op == "insert":
            b.insert(i, rng.randrange(256))
        elif op == "dup":
            j = rng.randrange(i, len(b) + 1)
            b[i:i] = b[i:j]
        else:
            j = rng.randrange(len(b))
            b[i], b[j] = b[j], b[i]
        if not b:
            b.append(1)
    return bytes(b)


def test_mutated_frames(device, build, images):
    rng = random.Random(2)
    kinds = []
    for i in range(60):
        ptype = rng.choice([proto.INFER, proto.INFER_RLE, proto.HELLO, proto.STATS, proto.SELFTEST])
        body = {proto.INFER: proto.encode_pixels, proto.INFER_RLE: proto.encode_pixels_rle}.get(
            ptype, lambda _: b"")(images[i % len(images)])
        frame = proto.encode_request(ptype, 200 + i, body)
        mutated = _mutate(rng, frame)
        if mutated == frame[:-1]:
            continue
        errors = _check_resync(device, build, images, mutated, 1000 + i)
        kinds += [e.error_code for e in errors]
    # The mutations must reach more than one check (CRC, framing, length, ...).
    assert len(set(kinds)) >= 3, kinds


def test_valid_but_wrong_requests(device, build, images):
    cases = [
        (proto.build_packet(0x42, 7, b""), proto.ErrorCode.UNKNOWN_COMMAND, 7),
        (proto.build_packet(proto.INFER_RLE, 13, b"\x00\xff\x00\xff\x00\xff\x00\x14"),
         proto.ErrorCode.INPUT_SIZE, 13),
        (proto.build_packet(proto.INFER_RLE, 14, b"\x00\xff\x00\xff\x00\xff\x00\x12"),
         proto.ErrorCode.INPUT_SIZE, 14),
        (proto.build_packet(proto.INFER_RLE, 15, b"\x05\x00"), proto.ErrorCode.INPUT_SIZE, 15),
        (proto.build_packet(proto.INFER_RLE, 16, b"\x00\x00"), proto.ErrorCode.INPUT_SIZE, 16),
        (proto.build_packet(proto.INFER_RLE, 17, b"\x01" * 785), proto.ErrorCode.INPUT_SIZE, 17),
        (proto.build_packet(proto.INFER | proto.REPLY_FLAG, 8, b""),
         proto.ErrorCode.UNKNOWN_COMMAND, 8),
        (proto.build_packet(proto.INFER, 9, bytes(783)), proto.ErrorCode.INPUT_SIZE, 9),
        (proto.build_packet(proto.INFER, 10, b""), proto.ErrorCode.INPUT_SIZE, 10),
        (b"\x02" + proto.build_packet(proto.HELLO, 11)[1:], proto.ErrorCode.VERSION, 11),
        (proto.build_packet(proto.HELLO, 12)[:-1], proto.ErrorCode.BAD_LENGTH, 12),
        (b"\x01\x01", proto.ErrorCode.BAD_LENGTH, proto.SEQ_NONE),
    ]
    for i, (packet, code, seq) in enumerate(cases):
        errors = _check_resync(device, build, images, proto.cobs_encode(packet), 300 + i)
        assert [(e.error_code, e.seq) for e in errors] == [(code, seq)]


def test_truncated_frames(device, build, images):
    rng = random.Random(3)
    for i in range(30):
        pixels = proto.encode_pixels(images[i % len(images)])
        frame = proto.encode_request(proto.INFER, 400 + i, pixels)
        cut = rng.randrange(1, len(frame) - 1)
        # The cut frame runs into the next frame, which is lost with it: the device resyncs at
        # that frame's delimiter and answers the one after.
        lost = proto.encode_request(proto.HELLO, 500 + i)
        errors = _check_resync(device, build, images, frame[:cut] + lost[:-1], 600 + i)
        assert len(errors) == 1


def test_oversize_frames(device, build, images):
    rng = random.Random(4)
    for i, n in enumerate([proto.MAX_FRAME, proto.MAX_FRAME + 1, 5000, 70_000]):
        garbage = bytes(rng.randrange(1, 256) for _ in range(n))
        errors = _check_resync(device, build, images, garbage, 700 + i)
        assert [e.error_code for e in errors] == [proto.ErrorCode.OVERSIZE]
    # The largest valid packet still fits: an INFER with a 1024-byte body is a size error only.
    errors = _check_resync(device, build, images,
                           proto.encode_request(proto.INFER, 750, bytes(proto.MAX_BODY))[:-1], 751)
    assert [(e.error_code, e.seq) for e in errors] == [(proto.ErrorCode.INPUT_SIZE, 750)]


def test_slow_dribble(device, build, images):
    def dribble(data: bytes) -> None:
        for i in range(0, len(data), 7):
            device.send(data[i:i + 7])
            time.sleep(0.001)

    frame = proto.encode_request(proto.INFER, 800, proto.encode_pixels(images[2]))
    _check_resync(device, build, images, b"\x13\x37" * 40, 801, send=dribble)
    dribble(frame)
    r = device.wait_packets(1)
    assert r[0].seq == 800
    assert proto.decode_infer_reply(r[0].body).scores == tuple(int(v) for v in build[1][2])


def test_burst_of_requests_then_stats(device, build, images):
    device.request(proto.RESET, 900)
    n = 300
    frames = [_infer_frame(1000 + i, images[i % N_IMAGES]) for i in range(n)]
    burst = b"".join(frames)
    noise = b"\x00\x05\x06\x00" + bytes(range(1, 200)) + b"\x00"
    device.send(burst + noise + frames[0])  # n + 1 requests, 2 noise chunks
    got = device.wait_packets(n + 3, timeout=30)
    infer = [p for p in got if not p.is_error]
    assert [p.seq for p in infer] == [1000 + i for i in range(n)] + [1000]
    for p in infer:
        k = (p.seq - 1000) % N_IMAGES
        assert proto.decode_infer_reply(p.body).scores == tuple(int(v) for v in build[1][k])
    assert sum(p.is_error for p in got) == 2
    stats = proto.decode_info(device.request(proto.STATS, 901).body)
    assert int(stats["inferences"]) == n + 1
    assert int(stats["frames_bad"]) == 2 and int(stats["errors"]) == 2
    assert int(stats["rx_bytes"]) == len(burst) + len(noise) + len(frames[0]) + \
        len(proto.encode_request(proto.STATS, 901))
    assert int(stats["latency_min"]) <= int(stats["latency_max"])


def test_selftest_command(device):
    text = device.request(proto.SELFTEST, 950).body.decode()
    assert text.startswith("selftest: pass ") and text.split()[-1].split("/")[0] == \
        text.split()[-1].split("/")[1], text


def test_backend_failures_are_error_frames():
    exe = firmware.build_host(standin=True, defines=("NANO_TFLM_STANDIN_FAIL_INVOKE",))
    fw = FirmwareProc([str(exe)])
    bad = bytes([0xEE]) + bytes(783)
    r = fw.request(proto.INFER, 1, bad)
    assert (r.error_code, r.seq) == (proto.ErrorCode.INVOKE, 1)
    r = fw.request(proto.INFER, 2, bytes(784))
    assert r.type == proto.INFER | proto.REPLY_FLAG
    stats = proto.decode_info(fw.request(proto.STATS, 3).body)
    assert (stats["inferences"], stats["errors"]) == ("1", "1")
    assert fw.close() == 0 and fw.stderr_text() == ""

    exe = firmware.build_host(standin=True, defines=("NANO_TFLM_STANDIN_FAIL_INIT",
                                                     "NANO_TFLM_SELFTEST_AT_BOOT"))
    fw = FirmwareProc([str(exe)])
    assert fw.wait(lambda evs: len(evs) >= 2, 10)
    boot = fw.take()
    assert boot[0].text.endswith(" error=backend-not-ready")
    assert boot[1] == proto.LogLine("selftest: FAIL backend not ready")
    assert proto.decode_info(fw.request(proto.HELLO, 1).body)["ready"] == "0"
    r = fw.request(proto.INFER_RLE, 2, proto.encode_pixels_rle(bytes(784)))
    assert (r.error_code, r.seq) == (proto.ErrorCode.NOT_READY, 2)
    assert fw.request(proto.SELFTEST, 3).body == b"selftest: FAIL backend not ready"
    assert fw.close() == 0 and fw.stderr_text() == ""
