"""nanobench.client against a pure-Python fake device (TCP on loopback, socket:// URLs) that
misbehaves on purpose: garbage, log lines, dropped and corrupted frames, error replies, delays;
and against the host build of the firmware when it can be built."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import pytest

from nanobench import protocol as proto
from nanobench.client import Device, DeviceError, Inference, Lost
from nanocore.errors import UserError


def fake_scores(body: bytes) -> tuple[int, tuple[int, ...], int]:
    """The fake model: class, 10 int8 scores and latency ticks, all derived from the pixels, so
    a reply matched to the wrong request is caught."""
    a = np.frombuffer(body, dtype=np.uint8).astype(np.int64)
    scores = tuple(int(((a[i::10].sum() * 7 + i) % 256) - 128) for i in range(10))
    label = int(np.argmax(scores))
    return label, scores, 1000 + int(a.sum() % 97)


@dataclass
class Behaviour:
    """What the fake device does wrong. Counters are per INFER frame received."""

    boot: bytes = b"nano-tflm fw=0.1.0 proto=1 board=fake backend=aot model=0123456789abcdef\n\0"
    drop_every: int = 0  # no reply to every k-th INFER frame
    corrupt_every: int = 0  # flip a byte in every k-th reply
    error_every: int = 0  # answer every k-th INFER with ERR_BAD_CRC
    garbage_every: int = 0  # write random bytes + a log line before every k-th reply
    dup_every: int = 0  # send every k-th reply twice
    delay_s: float = 0.0  # sleep before each reply
    black_hole: int | None = None  # never answer images whose first pixel is this value
    black_hole_mod: int = 0  # never answer images whose pixel sum is a multiple of this
    lie_every: int = 0  # every k-th INFER reply lies, as `lie` says:
    lie: str = "label"  # "label": class byte not the argmax; "class200"; "short": 5 scores
    die_after: int = 0  # close the connection after answering this many INFER frames
    silent: bool = False  # never write anything
    text_only: bool = False  # an unrelated firmware printing text
    version: int = proto.VERSION  # version byte of the reply packets
    hello_proto: str = "1"
    rle: bool = True  # understands INFER_RLE and says so in HELLO
    seed: int = 0
    info: dict = field(default_factory=lambda: {
        "fw": "0.1.0", "board": "fake", "backend": "aot", "model_sha256": "0123456789abcdef",
        "input_shape": "1x28x28x1", "output_shape": "1x10", "arena_bytes": "2048",
        "arena_used_bytes": "1500",
        "model_bytes": "9000", "timer": "instructions", "tick_hz": "25000000",
        "ticks_to_units": "40", "clock_hz": "25000000", "stack_bytes": "4096",
        "stack_used_bytes": "900"})


class FakeDevice:
    """A TCP server on 127.0.0.1 speaking protocol v1 with the given Behaviour; one client."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.b = behaviour or Behaviour()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        # Set here, not in the thread: a test that closes the device at once would otherwise
        # close the socket under the thread's settimeout (OSError: bad file descriptor).
        self.srv.settimeout(5)
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        self.infer_frames = 0
        self.inferences = 0
        self.request_types: set[int] = set()
        self.rng = random.Random(self.b.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.srv.close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _packet(self, ptype: int, seq: int, body: bytes) -> bytes:
        head = struct.pack("<BBHH", self.b.version, ptype, seq, len(body)) + body
        return proto.encode_frame(head + struct.pack("<I", proto.crc32(head)))

    def _run(self) -> None:
        try:
            conn, _ = self.srv.accept()
        except OSError:
            return
        conn.settimeout(0.05)
        booted = False
        dec = proto.FrameDecoder()
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                if not booted and not self.b.silent:
                    # The boot line goes out once the client has spoken: pyserial's socket://
                    # open() drains the socket, so an earlier one could be dropped.
                    booted = True
                    conn.sendall(self.b.text_only and b"Hello from Blink!\r\n" or self.b.boot)
                for ev in dec.feed(data):
                    try:
                        out = self._answer(ev)
                    except ConnectionResetError:
                        # SO_LINGER 0: the client sees a reset, as when a board is unplugged.
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                        return
                    if out:
                        if self.b.delay_s:
                            time.sleep(self.b.delay_s)
                        try:
                            conn.sendall(out)
                        except OSError:
                            return

    def _answer(self, ev: proto.Event) -> bytes:
        b = self.b
        if b.silent:
            return b""
        if b.text_only:
            return b"Hello from Blink!\r\n"
        if isinstance(ev, proto.BadFrame):
            return self._packet(proto.ERROR, ev.seq, bytes([ev.error]))
        if not isinstance(ev, proto.Packet):
            return b""
        if ev.type == proto.HELLO:
            info = dict(b.info, proto=b.hello_proto, infer_rle=str(int(b.rle)))
            text = "\n".join(f"{k}={v}" for k, v in info.items()).encode()
            return self._packet(proto.HELLO | proto.REPLY_FLAG, ev.seq, text)
        if ev.type == proto.STATS:
            return self._packet(proto.STATS | proto.REPLY_FLAG, ev.seq,
                                f"inferences={self.inferences}\nerrors=0".encode())
        if ev.type == proto.RESET:
            self.inferences = 0
            return self._packet(proto.RESET | proto.REPLY_FLAG, ev.seq, b"")
        if ev.type == proto.SELFTEST:
            return self._packet(proto.SELFTEST | proto.REPLY_FLAG, ev.seq, b"selftest: pass 3/3")
        if ev.type not in (proto.INFER, proto.INFER_RLE) or (ev.type == proto.INFER_RLE
                                                             and not b.rle):
            return self._packet(proto.ERROR, ev.seq, bytes([proto.ErrorCode.UNKNOWN_COMMAND]))
        self.request_types.add(ev.type)
        body = ev.body
        if ev.type == proto.INFER_RLE:
            try:
                body = proto.decode_pixels_rle(body)
            except proto.ProtocolError:
                body = b""
        if len(body) != proto.INPUT_PIXELS:
            return self._packet(proto.ERROR, ev.seq, bytes([proto.ErrorCode.INPUT_SIZE]))
        self.infer_frames += 1
        k = self.infer_frames
        if b.black_hole is not None and body[0] == b.black_hole:
            return b""
        if b.black_hole_mod and sum(body) % b.black_hole_mod == 0:
            return b""
        if b.die_after and k > b.die_after:
            raise ConnectionResetError("fake device dies")
        if b.drop_every and k % b.drop_every == 0:
            return b""
        if b.error_every and k % b.error_every == 0:
            return self._packet(proto.ERROR, ev.seq, bytes([proto.ErrorCode.BAD_CRC]) + b"bad")
        self.inferences += 1
        label, scores, ticks = fake_scores(body)
        if b.lie_every and k % b.lie_every == 0:
            if b.lie == "label":
                label = (label + 1) % 10
            elif b.lie == "class200":
                label = 200
            else:
                scores = scores[:5]
                label = int(np.argmax(scores))
        out = self._packet(ev.type | proto.REPLY_FLAG, ev.seq,
                           proto.encode_infer_reply(label, scores, ticks))
        if b.corrupt_every and k % b.corrupt_every == 0:
            i = self.rng.randrange(1, len(out) - 1)
            out = out[:i] + bytes([out[i] ^ 0x5A or 1]) + out[i + 1:]
        if b.dup_every and k % b.dup_every == 0:
            out = out + out
        if b.garbage_every and k % b.garbage_every == 0:
            junk = bytes(self.rng.randrange(1, 256) for _ in range(self.rng.randrange(1, 40)))
            out = junk + b"\0debug: hello\n\0" + out
        return out


def images(n: int, seed: int = 1) -> np.ndarray:
    """n random 28x28 uint8 images; pixel 0 of image i is i % 250 (never the black-hole 255)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n) % 250
    return x


def check_results(x: np.ndarray, results: list) -> tuple[list[Inference], list[Lost]]:
    """Every image exactly once; every Inference carries the output of its own image."""
    assert sorted(r.index for r in results) == list(range(len(x)))
    done = [r for r in results if isinstance(r, Inference)]
    for r in done:
        label, scores, ticks = fake_scores(x[r.index].tobytes())
        assert (r.label, r.scores, r.latency_ticks) == (label, scores, ticks), r.index
        assert r.round_trip_s >= 0
    return done, [r for r in results if isinstance(r, Lost)]


def test_hello_info_and_commands():
    with FakeDevice() as fake, Device(fake.url, timeout=1.0) as dev:
        info = dev.hello()
        assert info["board"] == "fake" and info["proto"] == "1"
        assert dev.boot["model"] == "0123456789abcdef"
        assert dev.selftest() == (True, "selftest: pass 3/3")
        x = images(3)
        r = dev.infer(x[0])
        assert (r.label, r.scores) == fake_scores(x[0].tobytes())[:2]
        dev.reset()
        assert dev.stats()["inferences"] == "0"


@pytest.mark.parametrize(("window", "rle"), [(1, True), (4, True), (16, True), (4, False)])
def test_pipeline_clean_link(window, rle):
    """RLE is used exactly when HELLO says the firmware has it."""
    x = images(120)
    x[:, 5:20, :] = 0  # runs of zeros, as in MNIST
    with FakeDevice(Behaviour(rle=rle)) as fake, Device(fake.url, timeout=1.0) as dev:
        dev.hello()
        dev.reset_counters()
        done, lost = check_results(x, list(dev.infer_many(x, window=window)))
    assert len(done) == 120 and not lost
    assert dev.counters.retries == 0 and dev.counters.errors == 0
    assert dev.counters.sent == 120
    assert fake.request_types == {proto.INFER_RLE if rle else proto.INFER}


def test_pipeline_survives_a_bad_link():
    """Drops, corrupted replies, error frames, garbage, duplicates: every image still answered
    with its own output, and every retry and error counted."""
    x = images(300)
    bad = Behaviour(drop_every=17, corrupt_every=23, error_every=29, garbage_every=11,
                    dup_every=13, seed=3)
    with FakeDevice(bad) as fake, Device(fake.url, timeout=0.5, retries=4) as dev:
        dev.hello()
        dev.reset_counters()
        done, lost = check_results(x, list(dev.infer_many(x, window=8)))
    c = dev.counters
    assert len(done) == 300 and not lost
    # Each dropped, corrupted or refused frame cost one re-send (none lost for good). A
    # timeout on a loaded machine may add a re-send (or answer a slot's frame first): only
    # timeouts may explain a difference.
    expected_failures = sum(1 for k in range(1, fake.infer_frames + 1)
                            if k % 17 == 0 or k % 23 == 0 or k % 29 == 0)
    assert abs(c.retries - expected_failures) <= c.timeouts
    assert c.sent == 300 + c.retries
    assert c.sent - c.timeouts <= fake.infer_frames <= c.sent
    assert c.error_frames >= 1 and c.bad_frames >= 1 and c.stale >= 1
    assert c.errors == c.error_frames + c.bad_frames + c.timeouts


def test_lost_samples_are_never_results():
    x = images(20)
    x[[3, 11], 0, 0] = 255  # the fake never answers these
    with FakeDevice(Behaviour(black_hole=255)) as fake, \
            Device(fake.url, timeout=0.2, retries=2) as dev:
        dev.hello()
        done, lost = check_results(x, list(dev.infer_many(x, window=4)))
    assert sorted(r.index for r in lost) == [3, 11]
    assert all(r.attempts == 3 for r in lost)
    assert len(done) == 18 and dev.counters.lost == 2
    assert dev.counters.retries == 4


def test_slow_device_with_a_deep_window_is_not_a_timeout():
    """Replies 100 ms apart with 12 in flight: the last waits 1.2 s, twice the 0.6 s timeout,
    but the timeout counts from the last reply, so nothing is re-sent."""
    x = images(16)
    with FakeDevice(Behaviour(delay_s=0.1)) as fake, Device(fake.url, timeout=0.6) as dev:
        dev.hello()
        dev.reset_counters()
        done, _ = check_results(x, list(dev.infer_many(x, window=12)))
    assert len(done) == 16 and dev.counters.retries == 0 and dev.counters.timeouts == 0
    assert max(r.round_trip_s for r in done) > 0.6


def test_wrong_input_size_is_a_user_error():
    with (FakeDevice() as fake, Device(fake.url, timeout=0.5) as dev,
          pytest.raises(UserError, match="784 pixels")):
        list(dev.infer_many([bytes(100)]))


def test_no_port_is_one_line():
    with pytest.raises(DeviceError, match="no serial port at /dev/ttyNOPE"):
        Device("/dev/ttyNOPE0")


def test_nothing_listening():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(DeviceError, match="nothing is listening"):
        Device(f"socket://127.0.0.1:{port}")


def test_busy_port(tmp_path):
    pty = pytest.importorskip("pty")
    import os
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    try:
        with Device(name, timeout=0.2), pytest.raises(DeviceError, match="busy"):
            Device(name)
    finally:
        os.close(master)
        os.close(slave)


def test_silent_device():
    with (FakeDevice(Behaviour(silent=True)) as fake,
          Device(fake.url, timeout=0.2, retries=1) as dev,
          pytest.raises(DeviceError, match="silent")):
        dev.hello()


def test_not_our_firmware():
    with (FakeDevice(Behaviour(text_only=True)) as fake,
          Device(fake.url, timeout=0.2, retries=1) as dev,
          pytest.raises(DeviceError, match="does not speak the nano-tflm protocol.*Blink")):
        dev.hello()


def test_protocol_version_mismatch_in_frames():
    with (FakeDevice(Behaviour(version=2, boot=b"")) as fake,
          Device(fake.url, timeout=0.2, retries=1) as dev,
          pytest.raises(DeviceError, match="protocol version")):
        dev.hello()


def test_protocol_version_mismatch_in_hello():
    with (FakeDevice(Behaviour(hello_proto="7")) as fake, Device(fake.url, timeout=0.5) as dev,
          pytest.raises(DeviceError, match="protocol version 7")):
        dev.hello()


def test_loop_url_opens():
    """loop:// echoes our own frames back: requests are not replies, so HELLO finds no answer,
    and says so in one line (a loopback is not a device)."""
    with Device("loop://", timeout=0.1, retries=0) as dev:
        with pytest.raises(DeviceError, match="echoes the requests back"):
            dev.hello()
        assert dev.counters.sent == 1


def test_late_reply_to_an_earlier_attempt_is_accepted():
    """Every reply comes 0.4 s late, after the 0.25 s timeout: the re-sent HELLO's first
    reply still answers it (the old attempt's sequence number is remembered)."""
    with FakeDevice(Behaviour(delay_s=0.4)) as fake, \
            Device(fake.url, timeout=0.25, retries=3) as dev:
        assert dev.hello()["board"] == "fake"
        assert dev.counters.retries >= 1 and dev.counters.replies == 1
