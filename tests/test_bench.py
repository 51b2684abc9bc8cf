"""The bench without QEMU: ELF footprint against arm-none-eabi-size, summary/report files, and
tools/bench.py end to end against the host build of the firmware (a tiny random-weight model,
device outputs checked against the TFLM reference) and against the fake device."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nanobench import report
from nanobench.elfsize import classify_file, footprint
from nanocore.errors import UserError

REPO = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, str(REPO / "tools" / "bench.py")]
ARM_GCC = shutil.which("arm-none-eabi-gcc")
needs_arm = pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc not installed")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None,
                               reason="no host gcc/make to build the host firmware")
CLI_TIMEOUT = 300  # s: a hung bench fails the test instead of hanging the suite


# ------------------------------------------------------------------------------ elfsize


@pytest.fixture(scope="module")
def arm_elf(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("elf")
    (d / "lib" / "model").mkdir(parents=True)
    (d / "lib" / "model" / "model_data.c").write_text(
        "#include <stdint.h>\nconst uint8_t g_model[3000] = {1, 2, 3};\n")
    (d / "main.c").write_text(
        "#include <stdint.h>\n#include <string.h>\n"
        "extern const uint8_t g_model[3000];\n"
        "static uint8_t arena[4096];\nint counter = 5;\n"
        "int main(void) { memcpy(arena, g_model, 100); return arena[3] + counter; }\n")
    elf = d / "t.elf"
    subprocess.run([ARM_GCC, "-mcpu=cortex-m4", "-mthumb", "-g", "-O1", "--specs=nosys.specs",
                    str(d / "main.c"), str(d / "lib" / "model" / "model_data.c"), "-o", str(elf)],
                   check=True, capture_output=True)
    return elf


@needs_arm
def test_footprint_matches_arm_size(arm_elf):
    """Totals equal binutils' Berkeley figures; the breakdown sums to them; the 3000-byte
    model array and the 4096-byte arena land in the right parts."""
    out = subprocess.run([ARM_GCC.replace("gcc", "size"), "-B", str(arm_elf)], check=True,
                         capture_output=True, text=True).stdout.splitlines()[1].split()
    text, data, bss = map(int, out[:3])
    fp = footprint(arm_elf)
    assert (fp.text_bytes, fp.data_bytes, fp.bss_bytes) == (text, data, bss)
    assert fp.flash_bytes == text + data and fp.ram_bytes == data + bss
    assert sum(v["flash"] for v in fp.breakdown.values()) == fp.flash_bytes
    assert sum(v["ram"] for v in fp.breakdown.values()) == fp.ram_bytes
    assert fp.attribution == "dwarf"
    assert fp.breakdown["model"]["flash"] == 3000
    assert fp.breakdown["application"]["ram"] >= 4096 + 4  # arena + counter
    assert fp.breakdown["runtime"]["flash"] > 0  # memcpy and the C runtime from newlib
    d = fp.as_dict()
    assert d["flash_bytes"] == fp.flash_bytes and d["sections"][".text"]["kind"] == "text"


@needs_arm
def test_footprint_without_debug_info_uses_names(arm_elf, tmp_path):
    stripped = tmp_path / "s.elf"
    subprocess.run([ARM_GCC.replace("gcc", "objcopy"), "--strip-debug", str(arm_elf),
                    str(stripped)], check=True)
    fp = footprint(stripped)
    assert fp.attribution == "symbols"
    assert fp.breakdown["model"]["flash"] == 3000  # by the g_model name
    assert fp.flash_bytes == footprint(arm_elf).flash_bytes


def test_footprint_errors(tmp_path):
    with pytest.raises(UserError, match="ELF not found"):
        footprint(tmp_path / "nope.elf")
    (tmp_path / "x.elf").write_bytes(b"not an elf at all")
    with pytest.raises(UserError, match="not an ELF"):
        footprint(tmp_path / "x.elf")


def test_classify_file():
    assert classify_file("/r/firmware/lib/model/model_aot.c") == "model"
    assert classify_file("/r/firmware/lib/backend_aot/kernels_dsp.c") == "runtime"
    assert classify_file("/r/firmware/lib/benchcore/core.c") == "application"
    assert classify_file("../../../../newlib/libc/string/memcpy.c") == "runtime"


# ------------------------------------------------------------------------------- report


def _samples(n: int = 50) -> list[report.Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        ref = tuple(int(v) for v in rng.integers(-128, 128, 10))
        scores = ref if i % 10 else tuple((v + 1) % 128 for v in ref)  # 10 % disagree
        label = int(np.argmax(ref)) if i % 5 else (int(np.argmax(ref)) + 1) % 10  # 80 % right
        out.append(report.Sample(index=i, name=str(i), label=label,
                                 prediction=int(np.argmax(scores)), scores=scores, reference=ref,
                                 latency_ticks=1000 + i, latency=(1000 + i) * 40.0,
                                 round_trip_ms=10.0 + i, retries=0))
    return out


def test_percentile_is_nearest_rank():
    v = list(range(1, 101))
    assert report.percentile(v, 50) == 50 and report.percentile(v, 99) == 99
    assert report.percentile(v, 100) == 100 and report.percentile([7], 90) == 7
    assert report.percentile([], 50) is None


def test_summary_keys_and_figures():
    samples = _samples()
    info = {"board": "b", "backend": "aot", "arena_bytes": "100", "arena_used_bytes": "90",
            "model_bytes": "9", "timer": "instructions", "stack_used_bytes": "12"}
    fp = {"flash_bytes": 1000, "ram_bytes": 500, "breakdown": {}}
    s = report.summarize(samples, info=info, latency_unit="instructions", errors=2, retries=3,
                         lost=1, skipped=4, seconds=2.0, model_sha256="ab" * 32, footprint=fp)
    assert list(s)[:len(report.SUMMARY_KEYS)] == list(report.SUMMARY_KEYS)
    assert set(s["latency"]) == {"unit", "p50", "p90", "p99", "max"}
    assert set(s["round_trip_ms"]) == {"p50", "p99"}
    correct = sum(x.prediction == x.label for x in samples)
    assert s["accuracy"] == correct / 50
    assert s["agreement"] == sum(x.agrees for x in samples) / 50 == 0.9
    assert s["n"] == 50 and s["lost"] == 1 and s["throughput_ips"] == 25.0
    assert s["latency"]["max"] == 1049 * 40.0 and s["latency"]["unit"] == "instructions"
    assert (s["errors"], s["retries"], s["skipped"]) == (2, 3, 4)
    assert (s["flash_bytes"], s["ram_bytes"], s["arena_used_bytes"]) == (1000, 500, 90)
    assert "latency_us" not in s
    hw = report.summarize(samples, info=info, latency_unit="cycles", errors=0, retries=0, lost=0,
                          skipped=0, seconds=1.0, model_sha256="x", clock_hz=64_000_000)
    assert hw["latency_us"]["max"] == pytest.approx(1049 * 40.0 / 64.0)


def test_write_run(tmp_path):
    samples = _samples(30)
    s = report.summarize(samples, info={"board": "b", "backend": "aot"},
                         latency_unit="instructions", errors=0, retries=0, lost=0, skipped=0,
                         seconds=1.0, model_sha256="cd" * 32)
    paths = report.write_run(tmp_path / "run", samples, s, "test")
    rows = list(csv.DictReader(paths["samples"].open()))
    assert len(rows) == 30 and rows[3]["scores"] == " ".join(map(str, samples[3].scores))
    assert json.loads(paths["summary"].read_text())["n"] == 30
    md = paths["report"].read_text()
    assert "instruction count" in md and "Disagreements" in md
    for k in ("confusion", "latency"):
        assert paths[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------- bench CLI, host build


@pytest.fixture(scope="session")
def bench_model(tiny_tflite, tmp_path_factory) -> Path:
    """The conftest's briefly trained cnn (cached under build/test-cache) as a .tflite file:
    real accuracy, so predictions that do not line up with labels would show."""
    path = tmp_path_factory.mktemp("bench_model") / "cnn.tflite"
    path.write_bytes(tiny_tflite("cnn", per_channel_dense=False))
    return path


def run_bench(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=CLI_TIMEOUT, check=False)


@needs_gcc
def test_bench_host_build_agrees_with_reference(bench_model, tmp_path):
    r = run_bench("--emulate", "host", "--model", str(bench_model), "--limit", "150",
                  "--out", str(tmp_path / "run"), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(s)[:len(report.SUMMARY_KEYS)] == list(report.SUMMARY_KEYS)
    assert s["n"] == 150 and s["lost"] == 0 and s["errors"] == 0
    assert s["agreement"] == 1.0
    # Bit-exact outputs give the reference's predictions, so the same accuracy.
    assert s["accuracy"] == s["reference_accuracy"] > 0.3  # chance is 0.1
    assert s["board"] == "host" and s["backend"] == "aot" and s["latency"]["unit"] == "us"
    assert s["latency"]["p50"] > 0 and s["throughput_ips"] > 0
    assert s["flash_bytes"] is None  # a host executable has no flash footprint
    rows = list(csv.DictReader((tmp_path / "run" / "samples.csv").open()))
    assert len(rows) == 150 and all(row["agrees"] == "1" for row in rows)
    assert "agreement 1.0000" in r.stdout


@needs_gcc
def test_bench_images_folder_with_bad_files(bench_model, tmp_path):
    from PIL import Image

    from trainer.data import load_mnist

    mn = load_mnist()
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(12):
        # Dark digit on a light background, upscaled: what a photo of paper looks like.
        img = Image.fromarray(255 - mn.x_test[i]).resize((112, 112), Image.BILINEAR)
        img.save(photos / f"{mn.y_test[i]}_photo{i}.png")
    (photos / "3_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (photos / "4_empty.jpg").write_bytes(b"")
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(photos / "5_blank.png")
    r = run_bench("--emulate", "host", "--model", str(bench_model), "--images", str(photos),
                  "--out", str(tmp_path / "run"), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["n"] == 12 and s["skipped"] == 3 and s["agreement"] == 1.0
    assert {f["name"] for f in s["skipped_files"]} == {"3_broken.png", "4_empty.jpg",
                                                       "5_blank.png"}
    names = [row["name"] for row in csv.DictReader((tmp_path / "run" / "samples.csv").open())]
    assert sorted(names) == sorted(f"{mn.y_test[i]}_photo{i}.png" for i in range(12))


def test_bench_refuses_another_model(bench_model, tmp_path):
    from test_client import FakeDevice

    with FakeDevice() as fake:
        r = run_bench("--port", fake.url, "--model", str(bench_model), "--limit", "5",
                      "--out", str(tmp_path / "run"), "-q")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr  # one line, no traceback
    assert r.stderr.startswith("error: the device runs model 0123456789abcdef")
    assert not (tmp_path / "run").exists()


def test_device_side_takes_its_reference_from_the_caller_after_the_model_check():
    """nanobench.bench.run compares with the reference outputs its caller computes, and asks
    for them only once the device runs the right model (the reference run is the slow step)."""
    from test_client import FakeDevice, fake_scores

    from nanobench import bench as nb
    from nanobench.client import Device

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    workload = nb.Workload(images=images, labels=np.arange(12) % 10,
                           names=[str(i) for i in range(12)], source="random")
    calls = []

    def reference(imgs: np.ndarray) -> np.ndarray:
        calls.append(len(imgs))
        out = np.array([fake_scores(img.tobytes())[1] for img in imgs], np.int8)
        out[5] += 1  # one vector the device will not agree with
        return out

    with FakeDevice() as fake, Device(fake.url, timeout=2.0) as dev:
        with pytest.raises(UserError, match="the device runs model 0123456789abcdef"):
            nb.run(dev, workload, reference, sha256="f" * 64, progress=False)
        assert calls == []
        res = nb.run(dev, workload, reference, sha256="0123456789abcdef" + "0" * 48,
                     window=4, progress=False)
    assert calls == [12]
    assert res.complete and res.summary["n"] == 12
    assert res.summary["agreement"] == pytest.approx(11 / 12)
    assert [s.agrees for s in res.samples].count(False) == 1 and not res.samples[5].agrees


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "/dev/ttyNOPE0"], "error: no serial port at /dev/ttyNOPE0"),
    ([], "error: give either --port URL"),
    (["--port", "loop://", "--emulate", "host"], "error: give either --port URL"),
    (["--port", "loop://", "--model", "missing.tflite"], "error: model not found"),
    (["--port", "loop://", "--timeout", "0.2"],
     "error: device at loop:// echoes the requests back"),
])
def test_bench_user_errors_are_one_line(args, message, bench_model):
    model = [] if "--model" in args else ["--model", str(bench_model)]
    r = run_bench(*args, *model, "--limit", "3", "-q")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith(message), r.stderr


# ------------------------------------------------------------------------------ emulate


@pytest.fixture(scope="module")
def standin_host():
    from nanobench.firmware import build_host

    return build_host(standin=True)


@needs_gcc
@pytest.mark.parametrize("link", ["pipe", "tcp"])
def test_emulator_is_stopped_on_error(standin_host, link):
    from nanobench import emulate
    from nanobench.client import Device

    with pytest.raises(RuntimeError, match="boom"), \
            emulate.host(standin_host, link=link, max_seconds=60) as emu:
        proc = emu.proc
        with Device(emu.port, timeout=2.0) as dev:
            assert dev.hello()["board"] == "host"
        raise RuntimeError("boom")
    assert proc.poll() is not None


@needs_gcc
def test_emulator_watchdog_turns_a_hang_into_an_error(standin_host):
    from nanobench import emulate
    from nanobench.client import Device, DeviceError

    with emulate.host(standin_host, max_seconds=1.0) as emu:
        dev = Device(emu.port, timeout=1.0)
        dev.hello()
        time.sleep(1.5)  # the watchdog kills the process meanwhile
        with pytest.raises(DeviceError, match="exited"):
            dev.stats()


def test_missing_image_and_emulator_are_one_line(tmp_path):
    from nanobench import emulate

    with pytest.raises(UserError, match="firmware image not found"):
        emulate.qemu(tmp_path / "none.elf").__enter__()
    with pytest.raises(UserError, match="unknown emulator"):
        emulate.emulate("bochs", tmp_path / "x")


# ------------------------------------------------------------------------------ hardware


@pytest.mark.hardware
def test_board_matches_the_reference(request, tmp_path):
    """A Nano 33 BLE flashed with the default model (pio run -t upload): 1,000 MNIST test
    images, agreement 1.0, accuracy within 0.5 points of the reference, nothing lost."""
    port = request.config.getoption("--port")
    if not port:
        pytest.skip("needs --port URL of a flashed board (pytest -m hardware --port ...)")
    r = run_bench("--port", port, "--limit", "1000", "--out", str(tmp_path / "run"), "-q")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["n"] == 1000 and s["lost"] == 0 and s["agreement"] == 1.0
    assert abs(s["accuracy"] - s["reference_accuracy"]) <= 0.005
    assert s["latency"]["p50"] > 0 and s["arena_used_bytes"] > 0
