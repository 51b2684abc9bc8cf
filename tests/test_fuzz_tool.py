"""tools/fuzz_protocol.py, short: the host build under ASan/UBSan, the QEMU image, the libFuzzer
harness (skipped without clang), and the oracle itself, which must catch what it claims to."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nanobench import fuzz
from nanobench import protocol as proto
from nanocore.errors import UserError
from nanolab import bench as lab

REPO = Path(__file__).resolve().parents[1]
TOOL = [sys.executable, str(REPO / "tools" / "fuzz_protocol.py")]
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None,
                               reason="no host gcc/make to build the host firmware")


def _default_model_or_skip() -> None:
    from nanobench import firmware

    try:
        firmware.check_model_dir()
    except UserError as e:
        pytest.skip(f"no exported default model yet: {e}")


@needs_gcc
def test_fuzz_host_short(tmp_path):
    _default_model_or_skip()
    out = tmp_path / "fuzz.json"
    r = subprocess.run([*TOOL, "--target", "host", "--frames", "1500", "--seed", "3", "-q",
                        "--json", str(out)], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rec = json.loads(out.read_text())
    assert rec["frames"] == 1500 and rec["chunks"] >= 1500 * 0.9
    assert (rec["crashes"], rec["sanitizer_reports"], rec["mismatches"], rec["hangs"]) == \
        (0, 0, 0, 0)
    assert rec["infers_checked"] > 50 and len(rec["kinds"]) >= 10
    assert "frames 1,500" in r.stdout and "frames/s" in r.stdout


@pytest.mark.qemu
def test_fuzz_qemu_short():
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc")
    _default_model_or_skip()
    st = lab.fuzz_protocol("qemu", 120, seed=4)
    assert st.clean, st.examples
    assert st.frames == 120 and st.infers_checked > 0


def test_fuzz_libfuzzer_short():
    if shutil.which("clang") is None:
        pytest.skip("clang not installed (apt-get install clang): no libFuzzer harness")
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    _default_model_or_skip()
    res = lab.libfuzzer(5, seed=1)
    assert res.clean, res.output_tail
    assert res.executions > 100 and res.edges_total > 0
    assert 0 < res.edges_covered <= res.edges_total


def test_oracle_catches_wrong_missing_and_extra_replies():
    ref = np.array([[1, 9, 3, 0, 0, 0, 0, 0, 0, 0]], np.int8)
    req = fuzz._Expect(proto.INFER | proto.REPLY_FLAG, 5, 0)

    def reply(scores, label=1, seq=5):
        body = proto.encode_infer_reply(label, scores, 10)
        return proto.Packet(proto.INFER | proto.REPLY_FLAG, seq, body)

    err = proto.Packet(proto.ERROR, proto.SEQ_NONE, bytes([proto.ErrorCode.FRAMING]))
    garbage = b"\x13\x37"
    good = tuple(int(v) for v in ref[0])

    def check(expects, got):
        st = fuzz.FuzzStats("t", 0)
        chunks = [garbage if e is None else b"x" for e in expects]
        fuzz._check(st, expects, chunks, got, ref)
        return st.mismatches

    assert check([None, req], [err, reply(good)]) == 0
    assert check([None, req], [err, reply((1, 8, 3, 0, 0, 0, 0, 0, 0, 0))]) == 1  # wrong score
    assert check([req], [reply(good, label=2)]) == 1  # class byte not the argmax
    assert check([req], [reply(good, seq=6)]) == 1  # another request's answer
    assert check([None, req], [reply(good)]) >= 1  # a missing reply
    assert check([None], [err, err]) == 1  # an extra reply
    assert check([None], [reply(good)]) == 1  # garbage answered as a request


def test_generator_is_seeded_and_mixes_kinds():
    imgs = np.zeros((3, 28, 28), np.uint8)
    a = [fuzz._Generator(random.Random(9), imgs).item() for _ in range(1)]
    g1, g2 = fuzz._Generator(random.Random(9), imgs), fuzz._Generator(random.Random(9), imgs)
    s1 = [g1.item()[1] for _ in range(300)]
    s2 = [g2.item()[1] for _ in range(300)]
    assert s1 == s2 and a[0][1] == s1[0]
    kinds = {fuzz._Generator(random.Random(k), imgs).item()[0] for k in range(400)}
    assert kinds == {k for k, _ in fuzz.KINDS}
    assert all(x.endswith(b"\x00") for x in s1)


def test_tool_user_errors(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    r = subprocess.run([*TOOL, "--target", "host", "--frames", "10", "--json",
                        str(blocker / "x.json")], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 2 and r.stderr.startswith("error: cannot write --json")
    r = subprocess.run([*TOOL, "--target", "host", "--frames", "0"], capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 2 and "--frames" in r.stderr
