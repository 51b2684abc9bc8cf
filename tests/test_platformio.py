"""The Nano 33 BLE side, checked without the board, the nordicnrf52 platform or Renode.

What can be checked here:
- platformio.ini parses (`pio project config`), pins exact versions, and its envs agree with
  the firmware's sources, the Renode script and the Robot suite (UART, MIPS, ELF path);
- (the pre-build script and the committed model folder: test_pio_prebuild.py);
- the TFLM glue compiles with host g++ against test-only headers carrying the pinned library's
  signatures (tests/tflm_stub/), registers exactly the committed model's ops (from model_meta.h)
  and handles its error paths; the sketch and board port compile in all three env flavours;
- the exporter's op -> resolver-method table only names methods of the pinned resolver;
- the GitHub workflow runs make test, the PlatformIO build, the Robot suite (renode-test-action
  v5) and the bench.

What cannot (no registry access, no Renode): `pio run`, the Robot suite, the bench over Renode.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "tests" / "tflm_stub"
MODEL_DIR = ROOT / "firmware" / "lib" / "model"
SCRIPT = ROOT / "firmware" / "scripts" / "pio_export_model.py"
RESC = ROOT / "renode" / "nano33ble.resc"
ROBOT = ROOT / "tests" / "renode" / "nano33ble_selftest.robot"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ENVS = ("nano33ble", "nano33ble_renode", "nano33ble_aot")
# tensorflow/tflite-micro-arduino-examples: head of main (2023-12-21), TFLM synced 2023-02-27.
PINNED_COMMIT = "7948b85e020470a30a83bf00e10fc43b486bfcba"
HOST_CXX = shutil.which("g++")
ARM_CXX = shutil.which("arm-none-eabi-g++")
needs_cxx = pytest.mark.skipif(HOST_CXX is None, reason="host g++ not installed")
needs_arm = pytest.mark.skipif(ARM_CXX is None, reason="arm-none-eabi-g++ not installed")
# The nano33ble core's code generation flags (variants/ARDUINO_NANO33BLE/cxxflags.txt).
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16",
             "-fno-rtti", "-fno-exceptions", "-funsigned-char"]
needs_model = pytest.mark.skipif(
    not (MODEL_DIR / "manifest.json").is_file(),
    reason="no committed model in firmware/lib/model (python -m trainer export writes it)")


# ------------------------------------------------------------------------------ platformio.ini

@pytest.fixture(scope="module")
def pio_config() -> dict[str, dict]:
    """`pio project config --json-output` as {section: {option: value}} (PlatformIO's parser)."""
    if importlib.util.find_spec("platformio") is None:
        pytest.skip("platformio not installed (pip install -e '.[dev]')")
    proc = subprocess.run(  # noqa: PLW1510 - returncode asserted below
        [sys.executable, "-m", "platformio", "project", "config", "--json-output"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
             "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No"})
    assert proc.returncode == 0, proc.stderr
    return {section: dict(options) for section, options in json.loads(proc.stdout)}


def _as_list(value) -> list[str]:
    return value if isinstance(value, list) else [v for v in str(value).split("\n") if v]


def test_envs_and_dirs(pio_config):
    assert pio_config["platformio"]["default_envs"] == ["nano33ble"]
    for key in ("src_dir", "lib_dir"):
        assert Path(pio_config["platformio"][key]).is_dir(), key
    assert (ROOT / "firmware" / "src" / "main.cpp").is_file()
    for env in ENVS:
        assert f"env:{env}" in pio_config, env


def test_versions_are_exact(pio_config):
    for env in ENVS:
        opts = pio_config[f"env:{env}"]
        assert opts["board"] == "nano33ble"
        assert opts["framework"] == ["arduino"]
        assert re.fullmatch(r"platformio/nordicnrf52@\d+\.\d+\.\d+", opts["platform"])
        for pkg in opts["platform_packages"]:
            assert re.fullmatch(r"platformio/[\w-]+@\d+\.\d+\.\d+", pkg), pkg
        assert "-std=gnu++14" in opts["build_unflags"]
        assert "-std=gnu++17" in _as_list(opts["build_flags"])
        assert opts["extra_scripts"] == [f"pre:{SCRIPT.relative_to(ROOT)}"]


def test_tflm_library_pinned_by_commit(pio_config):
    for env in ("nano33ble", "nano33ble_renode"):
        deps = pio_config[f"env:{env}"]["lib_deps"]
        assert len(deps) == 1
        assert re.fullmatch(
            r"https://github\.com/tensorflow/tflite-micro-arduino-examples\.git#[0-9a-f]{40}",
            deps[0]), deps
        assert deps[0].endswith("#" + PINNED_COMMIT)
        assert pio_config[f"env:{env}"]["lib_ignore"] == ["backend_aot"]
        # TFLM's DebugLog goes to backend_tflm.cpp's __wrap_DebugLog, not raw onto Serial.
        assert "-Wl,--wrap=DebugLog" in _as_list(pio_config[f"env:{env}"]["build_flags"])
    aot = pio_config["env:nano33ble_aot"]
    assert "lib_deps" not in aot
    assert aot["lib_ignore"] == ["backend_tflm"]
    assert "-DNANO_TFLM_BACKEND_AOT" in _as_list(aot["build_flags"])


def _renode_mips(pio_config) -> int:
    flags = _as_list(pio_config["env:nano33ble_renode"]["build_flags"])
    mips = [f.split("=", 1)[1] for f in flags if f.startswith("-DNANO_TFLM_RENODE_MIPS=")]
    assert len(mips) == 1
    return int(mips[0])


def test_renode_env_matches_firmware_and_scripts(pio_config):
    flags = _as_list(pio_config["env:nano33ble_renode"]["build_flags"])
    for define in ("-DNANO_TFLM_SERIAL1", "-DNANO_TFLM_SELFTEST_AT_BOOT",
                   "-DNANO_TFLM_SELFTEST_TICKS", "-DNANO_TFLM_RENODE"):
        assert define in flags
    board = (ROOT / "firmware" / "src" / "board_nano33ble.cpp").read_text()
    # Every define the env sets is one the board port (or the core) reads.
    for define in ("NANO_TFLM_SERIAL1", "NANO_TFLM_RENODE", "NANO_TFLM_RENODE_MIPS"):
        assert define in board
    core = (ROOT / "firmware" / "lib" / "benchcore" / "core.c").read_text()
    assert "NANO_TFLM_SELFTEST_AT_BOOT" in core and "NANO_TFLM_SELFTEST_TICKS" in core
    # Serial1 goes through our UARTE driver, never the core's Serial1 (mbed's serial HAL needs
    # the SHORTS register Renode does not model); timing is DWT->CYCCNT, not micros().
    assert "nrf52_uarte_init" in board and "Serial1." not in board
    assert "UnbufferedSerial" not in board and "micros()" not in re.sub(r"//.*", "", board)

    mips = _renode_mips(pio_config)
    resc = RESC.read_text()
    robot = ROBOT.read_text()
    assert re.search(rf"^cpu PerformanceInMips {mips}$", resc, re.MULTILINE)
    assert re.search(rf"^\$\{{MIPS\}}\s+{mips}$", robot, re.MULTILINE)
    # The DWT model (CYCCNT) at MIPS MHz in both, so one tick is one instruction.
    dwt = (r'dwt: Miscellaneous\.DWT @ sysbus 0xE0001000 \{ frequency: '
           rf'{mips * 1_000_000} \}}')
    assert re.search(rf'^machine LoadPlatformDescriptionFromString "{dwt}"$', resc, re.MULTILINE)
    assert re.search(rf"^\$\{{DWT\}}\s+{dwt}$", robot, re.MULTILINE)
    assert 'LoadPlatformDescriptionFromString "${DWT}"' in robot
    assert 'board=nano33ble-renode' in robot and '"nano33ble-renode"' in board


def test_renode_script_and_suite():
    resc = RESC.read_text()
    robot = ROBOT.read_text()
    repl = "@platforms/boards/arduino_nano_33_ble.repl"
    assert f"machine LoadPlatformDescription {repl}" in resc
    assert f"machine LoadPlatformDescription {repl}" in robot
    # Raw TCP, no telnet negotiation, on the UART the firmware's Serial1 drives.
    terminal = r'^emulation CreateServerSocketTerminal \$port "term" false$'
    assert re.search(terminal, resc, re.MULTILINE)
    assert re.search(r"^connector Connect sysbus\.uart0 term$", resc, re.MULTILINE)
    assert re.search(r"^\$\{UART\}\s+sysbus\.uart0$", robot, re.MULTILINE)
    # nanobench.emulate sets $bin and $port; the defaults point at PlatformIO's output.
    elf = ".pio/build/nano33ble_renode/firmware.elf"
    assert f"$bin?=@{elf}" in resc
    assert f"${{CURDIR}}/../../{elf}" in robot
    assert re.search(r"^\$port\?=\d+$", resc, re.MULTILINE)
    assert "sysbus LoadELF $bin" in resc and resc.rstrip().endswith("start")
    # The suite fails at once on a self-test mismatch and waits for the boot and pass lines.
    assert "Register Failing Uart String    FAIL" in robot
    assert "nano-tflm fw=" in robot and "selftest: pass" in robot
    # ... and boots twice, expecting the same self-test tick count (the line core.c prints).
    assert "selftest: ticks=([1-9][0-9]*)" in robot
    assert re.search(r"\$\{first\}=\s+Boot And Pass The Self-Test\n\s+Reset Emulation\n"
                     r"\s+\$\{second\}=\s+Boot And Pass The Self-Test\n"
                     r"\s+Should Be Equal\s+\$\{first\}\s+\$\{second\}", robot)
    assert '"selftest: ticks="' in (ROOT / "firmware/lib/benchcore/core.c").read_text()
    from nanobench import emulate

    assert emulate.RENODE_SCRIPT == RESC


def test_ini_comments_record_the_pin_and_why():
    ini = (ROOT / "platformio.ini").read_text()
    commit = re.search(r"tflite-micro-arduino-examples\.git#([0-9a-f]{40})", ini).group(1)
    comments = "\n".join(ln for ln in ini.splitlines() if ln.lstrip().startswith(";"))
    assert commit in comments
    assert commit == PINNED_COMMIT
    # The pin's own date and its TFLM sync date (git log of that repository).
    assert "2023-12-21" in comments and "2023-02-27" in comments
    assert "per-channel" in comments
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    parser.read_string(ini)  # also valid for a plain INI reader
    assert parser.has_section("env:nano33ble")


# ----------------------------------------------------------------- TFLM glue vs pinned headers

def _stub_methods() -> set[str]:
    text = (STUB / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h").read_text()
    return set(re.findall(r"TfLiteStatus (Add\w+)\(", text))


def test_exporter_only_names_methods_of_the_pinned_resolver():
    from trainer.export import TFLM_RESOLVER

    missing = sorted(set(TFLM_RESOLVER.values()) - _stub_methods())
    assert not missing, f"export.TFLM_RESOLVER names methods the pinned resolver lacks: {missing}"


# MicroInterpreter's constructors in src/tensorflow/lite/micro/micro_interpreter.h of
# tensorflow/tflite-micro-arduino-examples @ 7948b85e020470a30a83bf00e10fc43b486bfcba, as read
# from that file (whitespace normalised). The stand-in must declare exactly these.
PINNED_INTERPRETER_CONSTRUCTORS = [
    ("MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, "
    "uint8_t* tensor_arena, size_t tensor_arena_size, "
    "MicroResourceVariables* resource_variables = nullptr, "
    "MicroProfilerInterface* profiler = nullptr);"),
    ("MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver, "
    "MicroAllocator* allocator, MicroResourceVariables* resource_variables = nullptr, "
    "MicroProfilerInterface* profiler = nullptr);"),
]
# The Add* methods of that commit's micro_mutable_op_resolver.h that take a kernel
# registration (with the default Register_<OP>()); every other Add* takes no argument.
PINNED_ADD_WITH_REGISTRATION = {
    "AddAdd": "ADD", "AddAveragePool2D": "AVERAGE_POOL_2D", "AddConv2D": "CONV_2D",
    "AddDepthwiseConv2D": "DEPTHWISE_CONV_2D", "AddFullyConnected": "FULLY_CONNECTED",
    "AddMaxPool2D": "MAX_POOL_2D", "AddMul": "MUL", "AddPad": "PAD", "AddSoftmax": "SOFTMAX",
    "AddSvdf": "SVDF",
}


def test_stand_in_interpreter_constructors_are_the_pinned_ones():
    text = (STUB / "tensorflow/lite/micro/micro_interpreter.h").read_text()
    flat = " ".join(text.split())
    found = re.findall(r"(?<![~\w])MicroInterpreter\([^;{]*\);", flat)
    assert found == PINNED_INTERPRETER_CONSTRUCTORS


def test_stand_in_resolver_parameter_lists_are_the_pinned_ones():
    text = " ".join((STUB / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
                    .split())
    methods = [(name, params.strip())
               for name, params in re.findall(r"TfLiteStatus (Add\w+)\(([^)]*\)?)\)", text)]
    assert methods
    for name, params in methods:
        if name in PINNED_ADD_WITH_REGISTRATION:
            reg = PINNED_ADD_WITH_REGISTRATION[name]
            assert params == f"const TfLiteRegistration& registration = Register_{reg}()", name
        else:
            assert params == "", name
    assert "explicit MicroMutableOpResolver() {}" in text


def _glue_compile(*extra: str) -> list[str]:
    return [HOST_CXX, "-std=gnu++17", "-Wall", "-Wextra", "-Werror",
            "-Wno-unused-const-variable", *extra, f"-I{STUB}",
            f"-I{ROOT / 'firmware/lib/backend_tflm'}", f"-I{ROOT / 'firmware/lib/benchcore'}",
            f"-I{MODEL_DIR}"]


@pytest.fixture(scope="module")
def glue_binary(tmp_path_factory) -> Path:
    """backend_tflm.cpp + the committed model_data.cc, linked with the fake TFLM and, as on the
    board, -Wl,--wrap=DebugLog."""
    out = tmp_path_factory.mktemp("tflm_glue") / "check_backend_tflm"
    cmd = [*_glue_compile(), str(ROOT / "firmware/lib/backend_tflm/backend_tflm.cpp"),
           str(STUB / "fake_tflm.cpp"), str(STUB / "fake_system_setup.cpp"),
           str(STUB / "check_backend_tflm.cpp"), str(MODEL_DIR / "model_data.cc"),
           "-Wl,--wrap=DebugLog", "-o", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def _run_glue_full(binary: Path, mode: str) -> tuple[list[str], int, str, list[str]]:
    """(registered ops, backend_init result, backend_init_error text, log lines)."""
    proc = subprocess.run([str(binary), mode], check=False, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    ops = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("op ")]
    result = int(re.search(r"^result (-?\d+)$", proc.stdout, re.MULTILINE).group(1))
    error = next(ln[len("error "):] for ln in lines if ln.startswith("error "))
    logs = [ln[len("log "):] for ln in lines if ln.startswith("log ")]
    # Nothing but the driver's own lines: TFLM text never reaches the output raw.
    assert all(ln.split(" ", 1)[0] in {"op", "result", "error", "log"} for ln in lines), lines
    return ops, result, error, logs


def _run_glue(binary: Path, mode: str) -> tuple[list[str], int]:
    ops, result, _, _ = _run_glue_full(binary, mode)
    return ops, result


@needs_cxx
@needs_model
def test_glue_registers_exactly_the_exported_ops(glue_binary):
    from trainer.export import TFLM_RESOLVER

    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    expected = [TFLM_RESOLVER[op] for op in manifest["model"]["unique_ops"]]
    ops, result = _run_glue(glue_binary, "ok")
    assert result == 0
    assert ops == expected


@needs_cxx
@needs_model
@pytest.mark.parametrize(("mode", "code"), [("zero-point", "BACKEND_TFLM_ERR_TENSORS"),
                                            ("alloc-fail", "BACKEND_TFLM_ERR_ALLOCATE")])
def test_glue_refuses_what_it_cannot_run(glue_binary, mode, code):
    header = (ROOT / "firmware/lib/backend_tflm/backend_tflm.h").read_text()
    value = int(re.search(rf"#define {code} \((-\d+)\)", header).group(1))
    _, result = _run_glue(glue_binary, mode)
    assert result == value


@needs_cxx
@needs_model
@pytest.mark.parametrize(("mode", "code", "what"), [
    ("alloc-fail", "BACKEND_TFLM_ERR_ALLOCATE",
     ("tflm: AllocateTensors failed, arena {arena} B (fake: arena too small, 4321 more bytes "
     "needed)")),
    ("missing-op", "BACKEND_TFLM_ERR_ALLOCATE",
     ("tflm: AllocateTensors failed, arena {arena} B (fake: no kernel registered for builtin op "
     "3)")),
    ("resolver-full", "BACKEND_TFLM_ERR_RESOLVER",
     ("tflm: MicroMutableOpResolver::{first_op} failed (fake resolver: no room for {first_op} "
     "({count} ops))")),
    ("zero-point", "BACKEND_TFLM_ERR_TENSORS",
     "tflm: input/output tensors differ from model_meta.h (re-export the model)"),
])
def test_glue_names_what_failed_and_routes_tflm_log(glue_binary, mode, code, what):
    """Each init failure gives a one-line reason with TFLM's own message as the detail; every
    TFLM message went through the DebugLog wrapper as a "tflm: " log line."""
    from trainer.export import TFLM_RESOLVER

    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    ops = manifest["model"]["unique_ops"]
    meta = (MODEL_DIR / "model_meta.h").read_text()
    arena = int(re.search(r"#define MODEL_ARENA_BYTES (\d+)", meta).group(1))
    header = (ROOT / "firmware/lib/backend_tflm/backend_tflm.h").read_text()
    value = int(re.search(rf"#define {code} \((-\d+)\)", header).group(1))
    _, result, error, logs = _run_glue_full(glue_binary, mode)
    assert result == value
    assert error == what.format(arena=arena, first_op=TFLM_RESOLVER[ops[0]], count=len(ops))
    assert logs and all(ln.startswith("tflm: ") for ln in logs)
    _, result, error, logs = _run_glue_full(glue_binary, "ok")
    assert (result, error) == (0, "")
    assert logs == [f"tflm: fake AllocateTensors: arena of {arena} bytes", "tflm: fake Invoke #1"]


HOST_CC = shutil.which("gcc")
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


@pytest.fixture(scope="module")
def tflm_host(tmp_path_factory) -> Path:
    """The host firmware (firmware/ports/host + benchcore) with the TFLM glue over the fake
    TFLM, linked like the board (-Wl,--wrap=DebugLog; the fake's DebugLog writes raw to the
    link, as the library's Serial.print does). ASan/UBSan on."""
    if HOST_CXX is None or HOST_CC is None:
        pytest.skip("host gcc/g++ not installed")
    out = tmp_path_factory.mktemp("tflm_host")
    core, host = ROOT / "firmware/lib/benchcore", ROOT / "firmware/ports/host"
    objs = []
    for src in (core / "core.c", core / "protocol.c", host / "board_host.c",
                host / "main_host.c"):
        obj = out / f"{src.stem}.o"
        cmd = [HOST_CC, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", *SAN,
               f"-I{core}", f"-I{host}", f"-I{MODEL_DIR}", "-c", str(src), "-o", str(obj)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        objs.append(str(obj))
    exe = out / "nano_tflm_host_tflm"
    cmd = [*_glue_compile("-O1", "-g", *SAN),
           str(ROOT / "firmware/lib/backend_tflm/backend_tflm.cpp"),
           str(STUB / "fake_tflm.cpp"), str(STUB / "fake_system_setup.cpp"),
           str(STUB / "fake_tflm_host.cpp"), str(MODEL_DIR / "model_data.cc"), *objs,
           "-Wl,--wrap=DebugLog", "-o", str(exe)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return exe


@needs_model
def test_tflm_log_reaches_the_host_as_log_lines(tflm_host, monkeypatch):
    """The fake TFLM logs during init and during every invoke: the host sees each message as
    a log line, and every reply is still correct (fake invoke: output[k] = input[k])."""
    import numpy as np

    from nanobench import emulate
    from nanobench.client import Device
    from trainer.reference import input_lut

    monkeypatch.setenv("NANO_TFLM_FAKE", "ok")
    rng = np.random.default_rng(9)
    with emulate.host(tflm_host, max_seconds=60) as emu, Device(emu.port, timeout=5.0) as dev:
        info = dev.hello()
        assert info["backend"] == "tflm" and info["ready"] == "1"
        lut = input_lut(float(info["input_scale"]), int(info["input_zero_point"]))
        for n in range(1, 4):
            pixels = rng.integers(0, 256, size=784, dtype=np.uint8)
            before = len(dev.log_lines)
            got = dev.infer(pixels)
            want = lut[pixels[:10]]
            assert list(got.scores) == want.tolist()
            assert dev.log_lines[before:] == [f"tflm: fake Invoke #{n}"]
        assert dev.stats()["inferences"] == "3"
        assert dev.counters.bad_frames == 0
    arena = re.search(r"#define MODEL_ARENA_BYTES (\d+)",
                      (MODEL_DIR / "model_meta.h").read_text()).group(1)
    init_line = f"tflm: fake AllocateTensors: arena of {arena} bytes"
    assert dev.log_lines.index(init_line) < next(
        i for i, ln in enumerate(dev.log_lines) if ln.startswith("nano-tflm "))


@needs_model
@pytest.mark.parametrize(("mode", "detail"), [
    ("alloc-fail", "AllocateTensors failed, arena"),
    ("missing-op", "no kernel registered for builtin op 3"),
    ("resolver-full", "MicroMutableOpResolver::"),
])
def test_tflm_init_failure_is_a_clear_error_reply(tflm_host, monkeypatch, mode, detail):
    """A failed init: TFLM's messages arrive as log lines, the boot line says
    error=backend-not-ready, and INFER gets ERR_NOT_READY naming what failed."""
    from nanobench import emulate, protocol
    from nanobench.client import Device, DeviceError

    monkeypatch.setenv("NANO_TFLM_FAKE", mode)
    with emulate.host(tflm_host, max_seconds=60) as emu, Device(emu.port, timeout=5.0) as dev:
        assert dev.hello()["ready"] == "0"
        with pytest.raises(DeviceError, match="backend failed to initialise: tflm: ") as info:
            dev.infer(bytes(784))
        assert detail in str(info.value)
        assert dev.counters.error_codes == {protocol.error_name(protocol.ErrorCode.NOT_READY): 1}
        assert any(ln.startswith("tflm: fake") for ln in dev.log_lines)
        assert any(ln.endswith(" error=backend-not-ready") for ln in dev.log_lines)
        assert dev.counters.bad_frames == 0


@needs_cxx
@pytest.mark.parametrize("defines", [
    [],                                                                   # nano33ble
    ["-DNANO_TFLM_SERIAL1", "-DNANO_TFLM_SELFTEST_AT_BOOT",               # nano33ble_renode
     "-DNANO_TFLM_SELFTEST_TICKS", "-DNANO_TFLM_RENODE", "-DNANO_TFLM_RENODE_MIPS=64"],
    ["-DNANO_TFLM_BACKEND_AOT"],                                          # nano33ble_aot
    ["-DNANO_TFLM_SERIAL1"],                                              # a board on Serial1
], ids=[*ENVS, "nano33ble_serial1"])
def test_sketch_and_board_port_compile(defines):
    cmd = [HOST_CXX, "-std=gnu++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", *defines,
           f"-I{STUB / 'arduino'}", f"-I{STUB}", f"-I{ROOT / 'firmware/lib/benchcore'}",
           f"-I{ROOT / 'firmware/lib/backend_tflm'}", f"-I{ROOT / 'firmware/lib/backend_aot'}",
           str(ROOT / "firmware/src/board_nano33ble.cpp"), str(ROOT / "firmware/src/main.cpp")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # PlatformIO compiles every file of src_dir in every env, the C driver included.
    cmd = [HOST_CXX.replace("g++", "gcc"), "-std=gnu11", "-Wall", "-Wextra", "-Werror",
           "-fsyntax-only", *defines, str(ROOT / "firmware/src/nrf52_uarte.c")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@needs_arm
@needs_model
def test_arduino_sources_compile_for_cortex_m4():
    """The same sources with the board's compiler flavour (32-bit size_t, unsigned char)."""
    cmd = [ARM_CXX, "-std=gnu++17", *ARM_FLAGS, "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
           "-DNANO_TFLM_SERIAL1", "-DNANO_TFLM_RENODE",
           f"-I{STUB / 'arduino'}", f"-I{STUB}", f"-I{ROOT / 'firmware/lib/benchcore'}",
           f"-I{ROOT / 'firmware/lib/backend_tflm'}", f"-I{MODEL_DIR}",
           str(ROOT / "firmware/lib/backend_tflm/backend_tflm.cpp"),
           str(ROOT / "firmware/src/board_nano33ble.cpp"), str(ROOT / "firmware/src/main.cpp")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The core's C flags (variants/ARDUINO_NANO33BLE/cflags.txt): gnu11, -Wall -Wextra.
    cmd = [ARM_CXX.replace("g++", "gcc"), "-std=gnu11", *ARM_FLAGS[:4], "-funsigned-char",
           "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(ROOT / "firmware/src/nrf52_uarte.c")]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------- GitHub workflow

def test_workflow_jobs():
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load(WORKFLOW.read_text())
    runs = {name: "\n".join(str(s.get("run", "")) for s in job["steps"])
            for name, job in wf["jobs"].items()}
    uses = {name: [s.get("uses", "") for s in job["steps"]] for name, job in wf["jobs"].items()}
    assert "make test" in runs["test"]
    assert "pio run -e nano33ble_renode" in runs["renode"]
    robot = [s for s in wf["jobs"]["renode"]["steps"]
             if s.get("uses", "").startswith("antmicro/renode-test-action@")]
    assert len(robot) == 1
    # v4 builds Renode with Mono and apt-installs gtk-sharp2, which ubuntu-24.04 lacks; v5 builds
    # with dotnet.
    assert robot[0]["uses"] == "antmicro/renode-test-action@v5"
    assert wf["jobs"]["renode"]["runs-on"] == "ubuntu-24.04"
    assert robot[0]["with"]["tests-to-run"] == "tests/renode/*.robot"
    assert re.search(r"tools/bench\.py --emulate renode\s+--elf "
                     r"\.pio/build/nano33ble_renode/firmware\.elf\s+--limit 1000", runs["renode"])
    assert any(u.startswith("actions/upload-artifact@") for u in uses["renode"])
    upload = next(s for s in wf["jobs"]["renode"]["steps"]
                  if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "runs/" in upload["with"]["path"]
    # The order matters: build, Robot suite, bench, then the upload (which runs even on failure).
    names = [s.get("name", s.get("uses", "")) for s in wf["jobs"]["renode"]["steps"]]
    order = [next(i for i, n in enumerate(names) if key in n)
             for key in ("Build nano33ble_renode", "Robot suite", "Bench", "Upload")]
    assert order == sorted(order)
    assert upload["if"] == "always()"


def test_workflow_builds_every_env():
    """A build-only job compiles all three envs, with the PlatformIO packages cached by the
    hash of platformio.ini (which pins them all)."""
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load(WORKFLOW.read_text())
    job = wf["jobs"]["pio"]
    runs = [str(s.get("run", "")) for s in job["steps"]]
    for env in ENVS:
        assert any(re.fullmatch(rf"\.venv/bin/pio run -e {env}", r.strip()) for r in runs), env
    cache = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.platformio"
    assert "hashFiles('platformio.ini')" in cache["with"]["key"]
    assert runs.index("make venv") < min(i for i, r in enumerate(runs) if "pio run" in r)
