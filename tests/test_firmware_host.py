"""The benchmark firmware with the real AOT backend, differentially against the TFLM reference:
the host build (ASan/UBSan; stdio and TCP), and once the QEMU Cortex-M4 image.

The model is a briefly trained seed_final (tests/conftest.py's tiny_tflite), exported with the
AOT backend into build/test-cache/, so these tests do not depend on the committed default model.
"""

from __future__ import annotations

import hashlib
import re
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import serial
from _firmware_proc import FirmwareProc

from nanobench import emulate, firmware
from nanobench import protocol as proto
from nanocore.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
N_HOST_IMAGES = 300
N_QEMU_IMAGES = 20
HELLO_KEYS = ["fw", "proto", "board", "backend", "model_sha256", "input_shape", "input_scale",
              "input_zero_point", "output_shape", "output_scale", "output_zero_point",
              "arena_bytes", "arena_used_bytes", "model_bytes", "clock_hz", "timer", "tick_hz",
              "ticks_to_units", "stack_bytes", "stack_used_bytes"]
STATS_KEYS = ["inferences", "errors", "rx_bytes", "frames_bad", "stack_used_bytes",
              "latency_min", "latency_max"]

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


@pytest.fixture(scope="module")
def model(tiny_tflite) -> dict:
    """Exported tiny seed_final: {"dir", "tflite", "sha256"}; cached by the model's hash."""
    from trainer.export import export

    tflite = tiny_tflite("seed_final")
    sha = hashlib.sha256(tflite).hexdigest()
    out = ROOT / "build" / "test-cache" / f"fw-{sha[:16]}"
    if not all((out / f).is_file() for f in (*firmware.MODEL_FILES, "model_int8.tflite")):
        out.mkdir(parents=True, exist_ok=True)
        src = out / "source.tflite"
        src.write_bytes(tflite)
        export(src, out, backend="aot")
    return {"dir": out, "tflite": tflite, "sha256": sha}


@pytest.fixture(scope="module")
def reference(model, mnist) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N,28,28), TFLM reference int8 scores (N,10)) for the first test images."""
    from trainer.reference import Reference

    images = mnist.x_test[:N_HOST_IMAGES]
    return images, Reference(model["tflite"]).run(images)


@pytest.fixture(scope="module")
def host_exe(model) -> Path:
    return firmware.build_host(model["dir"])


def _finish(fw: FirmwareProc) -> None:
    rc = fw.close()
    err = fw.stderr_text()
    assert rc == 0 and err == "", f"exit {rc}, stderr:\n{err[-4000:]}"


@needs_gcc
def test_host_matches_tflm_reference(host_exe, reference):
    images, want = reference
    fw = FirmwareProc([str(host_exe)])
    # Pipelined: every request at once; replies come back in order.
    fw.send(b"".join(proto.encode_request(proto.INFER, i, proto.encode_pixels(img))
                     for i, img in enumerate(images)))
    got = fw.wait_packets(len(images), timeout=60)
    assert [p.seq for p in got] == list(range(len(images)))
    replies = [proto.decode_infer_reply(p.body) for p in got]
    scores = np.array([r.scores for r in replies], np.int8)
    mismatch = np.flatnonzero((scores != want).any(axis=1))
    assert mismatch.size == 0, f"{mismatch.size} of {len(images)} differ, first {mismatch[:5]}"
    assert [r.label for r in replies] == list(np.argmax(want, axis=1))
    _finish(fw)


@needs_gcc
def test_hello_and_stats_describe_the_device(host_exe, model):
    from trainer.tflite_info import inspect

    info_model = inspect(model["tflite"])
    fw = FirmwareProc([str(host_exe)])
    fw.wait(lambda evs: len(evs) >= 1, 10)
    boot = fw.take()
    assert boot and boot[0] == proto.LogLine(
        f"nano-tflm fw=0.1.0 proto=1 board=host backend=aot model={model['sha256'][:16]}")
    info = proto.decode_info(fw.request(proto.HELLO, 1).body)
    assert set(HELLO_KEYS) <= set(info), set(HELLO_KEYS) - set(info)
    assert info["model_sha256"] == model["sha256"][:16]
    assert info["backend"] == "aot" and info["timer"] == "us" and info["proto"] == "1"
    assert info["timing"] == "polled"  # the host port reads its link only between inferences
    assert info["input_shape"] == "x".join(map(str, info_model.input_shape))
    assert info["output_shape"] == "x".join(map(str, info_model.output_shape))
    # The scale text round-trips the float32 in the .tflite exactly.
    assert np.float32(float(info["input_scale"])) == np.float32(info_model.input_scale)
    assert np.float32(float(info["output_scale"])) == np.float32(info_model.output_scale)
    assert int(info["input_zero_point"]) == info_model.input_zero_point
    assert int(info["output_zero_point"]) == info_model.output_zero_point
    assert int(info["model_bytes"]) == len(model["tflite"])
    aot_h = (model["dir"] / "model_aot.h").read_text()
    arena = int(re.search(r"#define MODEL_AOT_ARENA_BYTES\s+\(?(\d+)", aot_h).group(1))
    assert int(info["arena_bytes"]) == arena == int(info["arena_used_bytes"])

    fw.request(proto.INFER, 2, bytes(784))
    fw.request(proto.INFER, 3, bytes(783))
    stats = proto.decode_info(fw.request(proto.STATS, 4).body)
    assert set(STATS_KEYS) <= set(stats)
    assert (stats["inferences"], stats["errors"]) == ("1", "1")
    assert stats["link_irqs_in_invoke"] == "0"
    assert fw.request(proto.RESET, 5).body == b""
    stats = proto.decode_info(fw.request(proto.STATS, 6).body)
    assert (stats["inferences"], stats["errors"], stats["latency_max"]) == ("0", "0", "0")
    _finish(fw)


@needs_gcc
def test_selftest_passes_and_reports_a_difference(host_exe, model, tmp_path):
    fw = FirmwareProc([str(host_exe)])
    assert fw.request(proto.SELFTEST, 1).body == b"selftest: pass 5/5"
    _finish(fw)
    # A model folder whose recorded reference output for image 2 is off by one: the self-test
    # must say which image differed and how.
    bad = tmp_path / "model"
    shutil.copytree(model["dir"], bad)
    text = (bad / "model_selftest.h").read_text()
    head, rows = text.split("kModelSelftestOutput", 1)
    lines = rows.split("\n")
    row = next(i for i, ln in enumerate(lines) if ln.strip().startswith("{")) + 2
    vals = [int(v) for v in re.findall(r"-?\d+", lines[row])]
    vals[0] = vals[0] + 1 if vals[0] < 127 else vals[0] - 1
    lines[row] = "  {" + ", ".join(map(str, vals)) + "}" + ("," if lines[row].rstrip()
                                                              .endswith(",") else "")
    (bad / "model_selftest.h").write_text(head + "kModelSelftestOutput" + "\n".join(lines))
    fw = FirmwareProc([str(firmware.build_host(bad))])
    text = fw.request(proto.SELFTEST, 1).body.decode()
    _finish(fw)
    assert text.startswith("selftest: FAIL 4/5 image=2 got="), text
    assert f"want={','.join(map(str, vals))}" in text


def _tcp_port(proc: subprocess.Popen, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stderr], [], [], 0.2)
        if r:
            buf += proc.stderr.read1(256)
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", buf)
            if m:
                return int(m.group(1))
    raise AssertionError(f"no listening line: {buf!r}")


def _read_until(port, decoder: proto.FrameDecoder, cond, timeout: float = 10) -> list[proto.Event]:
    evs: list[proto.Event] = []
    deadline = time.monotonic() + timeout
    while not cond(evs) and time.monotonic() < deadline:
        evs += decoder.feed(port.read(4096))
    return evs


class _SocketLink:
    """Minimal serial-like wrapper over a plain socket (read with a timeout, write)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(0.05)

    def read(self, n: int) -> bytes:
        try:
            return self.sock.recv(n)
        except TimeoutError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


@needs_gcc
def test_tcp_mode_serves_one_client_after_another(host_exe, reference):
    images, want = reference
    proc = subprocess.Popen([str(host_exe), "--tcp", "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        port = _tcp_port(proc)
        for client in range(2):
            if client == 0:
                # A plain socket: pyserial's socket:// purges what arrived while it connected,
                # which may be the boot line (the client's hello() does not rely on it).
                link = _SocketLink(port)
                d = proto.FrameDecoder()
                evs = _read_until(link, d, lambda e: any(isinstance(x, proto.LogLine) for x in e))
                assert any(isinstance(e, proto.LogLine) and e.text.startswith("nano-tflm")
                           for e in evs), evs
            else:  # the pyserial URL the bench uses
                link = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.05)
                d = proto.FrameDecoder()
            link.write(b"\x99garbage\x00" + proto.encode_request(proto.INFER, 7, images[client]))
            evs = _read_until(link, d, lambda e: any(isinstance(x, proto.Packet) and x.seq == 7
                                                     for x in e))
            pk = [e for e in evs if isinstance(e, proto.Packet)]
            assert pk[0].is_error and pk[1].seq == 7
            scores = proto.decode_infer_reply(pk[1].body).scores
            assert scores == tuple(int(v) for v in want[client])
            link.close()
    finally:
        proc.kill()
        proc.wait(10)
    err = proc.stderr.read().decode()
    assert "runtime error" not in err and "Sanitizer" not in err, err


def test_build_refuses_a_folder_without_a_model(tmp_path):
    (tmp_path / "model_meta.h").write_text("")
    with pytest.raises(UserError, match=r"model_selftest\.h is missing.*trainer export"):
        firmware.build_host(tmp_path)
    with pytest.raises(UserError, match=r"missing"):
        firmware.build_qemu(tmp_path)


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-gcc") is None,
                    reason="qemu-system-arm / arm-none-eabi-gcc not installed (make setup)")
def test_qemu_image_matches_reference_and_resyncs(model, reference):
    images, want = reference
    elf = firmware.build_qemu(model["dir"], selftest=True)
    with FirmwareProc(emulate.qemu_command(elf)) as fw:
        assert fw.wait(lambda evs: len(evs) >= 2, 30), fw.events
        boot = fw.take()
        assert boot[0] == proto.LogLine(f"nano-tflm fw=0.1.0 proto=1 board=qemu-mps2-an386 "
                                    f"backend=aot model={model['sha256'][:16]}")
        assert boot[1] == proto.LogLine("selftest: pass 5/5")
        info = proto.decode_info(fw.request(proto.HELLO, 1, timeout=30).body)
        assert info["timer"] == "instructions" and info["ticks_to_units"] == "40"
        assert 0 < int(info["stack_used_bytes"]) < int(info["stack_bytes"])
        n = N_QEMU_IMAGES
        fw.send(b"".join(proto.encode_request(proto.INFER, 10 + i, images[i]) for i in range(n)))
        got = fw.wait_packets(n, timeout=60)
        assert [p.seq for p in got] == [10 + i for i in range(n)]
        replies = [proto.decode_infer_reply(p.body) for p in got]
        assert np.array_equal(np.array([r.scores for r in replies], np.int8), want[:n])
        assert all(r.latency_ticks > 0 for r in replies)
        # Garbage once: an error per chunk, then a correct answer.
        rng = np.random.default_rng(5)
        garbage = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() + b"\x00"
        fw.send(garbage + proto.encode_request(proto.INFER, 99, images[n]))
        ok = fw.wait(lambda evs: any(isinstance(e, proto.Packet) and e.seq == 99 for e in evs), 30)
        evs = fw.take()
        assert ok and all(isinstance(e, proto.Packet) for e in evs)
        chunks = sum(1 for c in garbage.split(b"\x00")[:-1] if c)
        assert [e.is_error for e in evs] == [True] * chunks + [False]
        assert proto.decode_infer_reply(evs[-1].body).scores == tuple(int(v) for v in want[n])

