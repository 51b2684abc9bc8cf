"""The bare-metal QEMU mps2-an386 port: build the self-check image, run it, check UART I/O both
ways (through the RX interrupt ring buffer and board_wait) and the SysTick tick -> instruction
calibration against a loop of known instruction count."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PORT = ROOT / "firmware" / "ports" / "qemu"
QEMU_ARGS = [
    "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "stdio",
    "-icount", "shift=0", "-semihosting-config", "enable=on,target=native",
]

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc (make sysdeps)",
    ),
]


class Qemu:
    """qemu-system-arm with UART0 on pipes; killed by close() whatever happened."""

    def __init__(self, elf: Path) -> None:
        self.proc = subprocess.Popen(
            ["qemu-system-arm", *QEMU_ARGS, "-kernel", str(elf)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.buf = b""

    def read_until(self, marker: bytes, timeout: float) -> bytes:
        """Read stdout until `marker` is seen; return everything up to and including it."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} within {timeout} s; got {self.buf[-200:]!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"QEMU closed its output; got {self.buf[-200:]!r}")
                self.buf += chunk
        end = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def read_exact(self, n: int, timeout: float) -> bytes:
        """Read exactly `n` bytes of stdout."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self.buf)} of {n} bytes within {timeout} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(f"QEMU closed its output after {len(self.buf)} of {n} bytes")
                self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def hello_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qemu_port") / "hello.elf"
    subprocess.run(["make", "-s", "-C", str(PORT), f"OUT={out}"], check=True,
                   capture_output=True, timeout=120)
    return out


@pytest.fixture
def qemu(hello_elf: Path):
    q = Qemu(hello_elf)
    try:
        yield q
    finally:
        q.close()


def test_banner_and_tick_calibration(qemu: Qemu) -> None:
    text = qemu.read_until(b"ready\n", timeout=60).decode()
    banner = re.search(r"hello board=(\S+) timer=(\S+) tick_hz=(\d+) ticks_to_units=(\d+)", text)
    assert banner, text
    assert banner.group(1) == "qemu-mps2-an386"
    assert banner.group(2) == "instructions"
    assert int(banner.group(3)) == 25_000_000
    per_tick = int(banner.group(4))
    calib = [(int(a), int(b)) for a, b in
             re.findall(r"calib loop_instructions=(\d+) ticks=(\d+)", text)]
    assert len(calib) == 4, text
    # Differences cancel the fixed cost of reading the timer; the loop counts are exact, so the
    # tick count must be within two ticks (one of rounding at each end) of instructions / per_tick.
    base_instr, base_ticks = calib[0]
    for instr, ticks in calib[1:]:
        expected = (instr - base_instr) / per_tick
        assert abs((ticks - base_ticks) - expected) <= 2.0, (instr, ticks, per_tick)
    # The last loop runs past a 2^24-tick SysTick reload: the 32-bit extension must hold.
    assert calib[-1][1] > 1 << 24


def test_uart_echo_both_ways(qemu: Qemu) -> None:
    qemu.read_until(b"ready\n", timeout=60)
    # Every byte value but EOT (the image's stop byte), several times over: more than the
    # 4 KiB RX ring, written at once: nothing may be lost or reordered on the way.
    payload = bytes(b for b in range(256) if b != 0x04) * 40
    qemu.send(payload)
    echoed = qemu.read_exact(len(payload), timeout=60)
    assert echoed == payload
    qemu.send(b"tail\x04")
    text = qemu.read_until(b"exit=000\n", timeout=30).decode("ascii", "replace")
    assert text.startswith("tail\nstack_used=")
    used, size = map(int, re.search(r"stack_used=(\d+) stack_size=(\d+)", text).groups())
    assert 0 < used < size == 16384
    assert qemu.proc.wait(timeout=10) == 0  # semihosting exit status
