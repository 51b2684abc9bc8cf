"""Run the firmware without a board: QEMU (mps2-an386), Renode (Nano 33 BLE), or the host build.

Each runner is a context manager that starts the emulator, yields an ``Emulator`` whose
``port`` goes straight to ``nanobench.client.Device`` (a serial-like object for stdio pipes, a
``socket://`` URL for TCP), and always stops the process: on normal exit, on an exception, on
Ctrl-C, and (with ``max_seconds``) when a watchdog fires. Each emulator runs in its own process
group (session) and is stopped as a group: ``renode`` is a launcher script that starts the real
Renode (``dotnet Renode.dll``) as its child, so stopping only the launcher would leave Renode
running. On Linux the direct child also gets PR_SET_PDEATHSIG, so it dies with the Python
process even after a SIGKILL (its own children do not inherit that).

Links: stdio pipes are the fastest for QEMU; a TCP chardev on a free loopback port needs
``nodelay=on`` or Nagle's algorithm adds ~40 ms per reply. QEMU's UART0 sits behind a mux chardev
(``qemu_args``): the CMSDK UART takes one byte at a time, and the mux's 32-byte buffer hands it
the next one as soon as the guest reads the last, instead of one main-loop turn per byte.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanocore.errors import UserError
from nanocore.paths import REPO_ROOT

log = logging.getLogger(__name__)

QEMU = "qemu-system-arm"
RENODE = "renode"
# -monitor none: with -nographic the monitor would be multiplexed on stdio, and its escape
# byte 0x01 (Ctrl-A) would eat protocol bytes. -icount shift=0: one instruction per virtual ns,
# so timing is a deterministic instruction count.
QEMU_ARGS = ("-M", "mps2-an386", "-nographic", "-monitor", "none", "-icount", "shift=0")
# UART0's chardev goes through a mux (mux=on) for speed. The CMSDK UART model holds one received
# byte and takes the next only after the guest read it; without a mux each byte then waits for a
# turn of QEMU's main loop (a thread hand-off each way and contention on QEMU's global lock:
# 8-11 ms of QEMU CPU per INFER_RLE request, 4-5 ms with the mux, measured on the loaded 2-core
# machine). The mux buffers 32 bytes and gives the UART the next one within the guest's read of
# the data register, so the receive interrupt drains a burst. The
# mux's escape character (Ctrl-A, `-echr`) is set past any byte value (256), so no byte of the
# link is taken as a mux command: every byte crosses (the QEMU port test's echo test).
QEMU_LINK_ID = "link"
QEMU_MUX = ("-echr", "256")
# Lets the image end QEMU with an exit status (SYS_EXIT): the check and AOT bench images do.
QEMU_SEMIHOSTING = ("-semihosting-config", "enable=on,target=native")
START_SECONDS = 10.0  # how long QEMU or the host build may take to listen on TCP
RENODE_START_SECONDS = 90.0  # Renode (a .NET program) loads the platform before it listens
STDERR_KEEP = 4000  # bytes of emulator stderr kept for error messages
STOP_SECONDS = 3.0  # grace period between SIGTERM and SIGKILL to the emulator's process group
RENODE_SCRIPT = REPO_ROOT / "renode" / "nano33ble.resc"


class EmulatorError(UserError):
    """The emulator could not be started or stopped working."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PipeSerial:
    """A serial-like object over a child process's stdin (write) and stdout (read).

    pyserial semantics where the client needs them: ``read(n)`` waits up to ``timeout`` seconds
    for n bytes and returns what came; ``in_waiting`` is the bytes readable now. When the child
    exits, ``read`` raises OSError with the exit code and the end of its stderr.
    """

    def __init__(self, proc: subprocess.Popen, name: str, stderr_tail: Any = None) -> None:
        self.proc = proc
        self.name = name
        self.timeout: float | None = 0.02
        self._rfd = proc.stdout.fileno()
        self._wfd = proc.stdin.fileno()
        os.set_blocking(self._rfd, False)
        self._stderr_tail = stderr_tail
        self.is_open = True

    @property
    def in_waiting(self) -> int:
        """Bytes that can be read without waiting."""
        buf = fcntl.ioctl(self._rfd, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def _dead(self) -> OSError:
        code = self.proc.poll()
        tail = self._stderr_tail() if self._stderr_tail else ""
        return OSError(f"{self.name} exited (code {code})" + (f": {tail}" if tail else ""))

    def read(self, size: int = 1) -> bytes:
        """Up to size bytes, waiting at most ``timeout`` seconds (None: forever)."""
        out = bytearray()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while len(out) < size:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._rfd], [], [], wait)
            if not ready:
                break
            try:
                chunk = os.read(self._rfd, size - len(out))
            except BlockingIOError:
                continue
            if not chunk:
                if out:
                    break
                raise self._dead()
            out += chunk
        return bytes(out)

    def write(self, data: bytes) -> int:
        """Write all of data (blocking while the pipe is full)."""
        view = memoryview(bytes(data))
        try:
            while view:
                n = os.write(self._wfd, view)
                view = view[n:]
        except BrokenPipeError:
            raise self._dead() from None
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: writes go straight to the pipe."""

    def reset_input_buffer(self) -> None:
        """Drop the bytes that are waiting."""
        while self.in_waiting:
            os.read(self._rfd, self.in_waiting)

    def close(self) -> None:
        """The emulator context closes the pipes when it stops the process."""
        self.is_open = False


@dataclass
class Emulator:
    """A running emulator: ``port`` for ``Device`` (serial-like object or URL), ``kind``
    ("qemu", "renode", "host"), ``link`` ("pipe" or "tcp"), the command line, the process."""

    kind: str
    port: Any
    link: str
    cmd: list[str]
    proc: subprocess.Popen
    _stderr: bytearray = field(default_factory=bytearray, repr=False)
    _stdout: bytearray = field(default_factory=bytearray, repr=False)
    _watchdog: threading.Timer | None = field(default=None, repr=False)

    def stderr_tail(self) -> str:
        """The last lines the emulator wrote to stderr (for error messages)."""
        return bytes(self._stderr[-STDERR_KEEP:]).decode(errors="replace").strip()

    def stdout_tail(self) -> str:
        """With a TCP link: the last lines the emulator wrote to stdout (drained and discarded
        as it comes, so a chatty emulator never blocks on a full pipe)."""
        return bytes(self._stdout[-STDERR_KEEP:]).decode(errors="replace").strip()


def _drain(stream, sink: bytearray) -> None:
    """Read stream to its end, keeping the last STDERR_KEEP bytes in sink, then close it.

    The reader closes the stream, not stop(): closing a buffered stream while another thread
    is blocked reading it waits for that read, which never ends while some process outside the
    group still holds the pipe."""
    try:
        for chunk in iter(lambda: stream.read1(4096), b""):
            sink += chunk
            del sink[:-STDERR_KEEP]
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send sig to the process group; False when no process of the group is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # only a process that is not ours could answer that
        return False
    return True


def _stop(proc: subprocess.Popen, grace: float = STOP_SECONDS) -> None:
    """SIGTERM to the child's whole process group, SIGKILL to what is left after ``grace``
    seconds; returns when the child is reaped and no process of the group is left (or after
    a second SIGKILL wait). Closes the child's stdin."""
    pgid = proc.pid  # start() makes the child a session and group leader
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    # The leader is reaped (or still running); wait for the rest of the group too.
    while time.monotonic() < deadline and _signal_group(pgid, 0):
        if proc.poll() is None:
            break  # the leader itself ignores SIGTERM: kill at once
        time.sleep(0.02)
    if _signal_group(pgid, signal.SIGKILL):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        end = time.monotonic() + grace
        while time.monotonic() < end and _signal_group(pgid, 0):
            time.sleep(0.02)
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _is_listening(port: int) -> bool:
    """True when a socket listens on 127.0.0.1:port (or any address).

    Linux: read /proc/net/tcp, so no probe connection is made (Renode's server socket terminal
    serves one client; a probe could take its place). Elsewhere: a connect probe.
    """
    try:
        with open("/proc/net/tcp") as fh:
            lines = fh.readlines()[1:]
    except OSError:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0
    for line in lines:
        fields = line.split()
        local, state = fields[1], fields[3]
        addr, _, hex_port = local.partition(":")
        # 0A = TCP_LISTEN; 0100007F = 127.0.0.1 in host byte order, 00000000 = any.
        if state == "0A" and int(hex_port, 16) == port and addr in ("0100007F", "00000000"):
            return True
    return False


def _wait_listening(port: int, proc: subprocess.Popen, emu: Emulator, what: str,
                    seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = (emu.stderr_tail() or emu.stdout_tail())[-300:] or "no message"
            raise EmulatorError(f"{what} exited at start (code {proc.returncode}): {said}")
        if _is_listening(port):
            return
        time.sleep(0.05)
    raise EmulatorError(f"{what} did not listen on 127.0.0.1:{port} within {seconds:g} s")


def start(cmd: Sequence[str], kind: str, *, link: str = "pipe", tcp_port: int | None = None,
          max_seconds: float | None = None, cwd: str | Path | None = None,
          start_seconds: float = START_SECONDS) -> Emulator:
    """Start ``cmd`` and return an Emulator whose port is the child's stdio (link "pipe") or
    ``socket://127.0.0.1:tcp_port`` once something listens there (link "tcp"). Call ``stop``
    afterwards (``run`` does both). ``max_seconds``: a watchdog kills the child after that long
    (reads then fail at once instead of hanging)."""
    if link not in ("pipe", "tcp"):
        raise ValueError(f"link must be 'pipe' or 'tcp', not {link!r}")
    log.info("starting %s", " ".join(cmd))
    try:
        # start_new_session: the child leads its own process group, so stop() reaches the
        # processes it starts (Renode's launcher script runs the real Renode as a child).
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd, start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (prctl only, no locks)
        )
    except OSError as exc:
        raise EmulatorError(f"cannot start {cmd[0]}: {exc}") from None
    emu = Emulator(kind=kind, port=None, link=link, cmd=list(cmd), proc=proc)
    threading.Thread(target=_drain, args=(proc.stderr, emu._stderr), daemon=True).start()
    if link == "tcp":
        # stdout is not the link: drain it, or an emulator that logs there (Renode's monitor
        # and log) stalls once the pipe is full.
        threading.Thread(target=_drain, args=(proc.stdout, emu._stdout), daemon=True).start()
    if max_seconds is not None:
        emu._watchdog = threading.Timer(max_seconds, _signal_group, (proc.pid, signal.SIGKILL))
        emu._watchdog.daemon = True
        emu._watchdog.start()
    try:
        if link == "pipe":
            emu.port = PipeSerial(proc, f"{kind} (stdio)", emu.stderr_tail)
        else:
            assert tcp_port is not None
            _wait_listening(tcp_port, proc, emu, kind, start_seconds)
            emu.port = f"socket://127.0.0.1:{tcp_port}"
    except BaseException:
        stop(emu)
        raise
    return emu


def stop(emu: Emulator) -> None:
    """Stop the emulator's process group (SIGTERM, then SIGKILL after 3 s) and close its
    pipes."""
    if emu._watchdog is not None:
        emu._watchdog.cancel()
    _stop(emu.proc)
    if emu.link == "pipe" and emu.proc.stdout is not None:  # PipeSerial's; drain threads close
        with contextlib.suppress(OSError):                  # the streams they read
            emu.proc.stdout.close()
    log.info("%s stopped (code %s)", emu.kind, emu.proc.returncode)


@contextlib.contextmanager
def run(cmd: Sequence[str], kind: str, *, link: str = "pipe", tcp_port: int | None = None,
        max_seconds: float | None = None, cwd: str | Path | None = None,
        start_seconds: float = START_SECONDS) -> Iterator[Emulator]:
    """``start`` as a context manager: the child is stopped when the block ends, however."""
    emu = start(cmd, kind, link=link, tcp_port=tcp_port, max_seconds=max_seconds, cwd=cwd,
                start_seconds=start_seconds)
    try:
        yield emu
    finally:
        stop(emu)


def qemu_args(chardev: str = "stdio", *, semihosting: bool = False) -> list[str]:
    """qemu-system-arm's arguments for an mps2-an386 image, all but ``-kernel ELF``: UART0 on
    the ``-chardev`` backend ``chardev`` ("stdio", or "socket,host=...,port=...,..."; its id and
    the mux are added here); ``semihosting``: the image may exit QEMU with a status. The one
    definition every QEMU run uses (``qemu_command``, tools/aot_bench.py, the tests)."""
    return [*QEMU_ARGS, "-chardev", f"{chardev},id={QEMU_LINK_ID},mux=on", *QEMU_MUX,
            "-serial", f"chardev:{QEMU_LINK_ID}", *(QEMU_SEMIHOSTING if semihosting else ())]


def qemu_command(elf: str | Path, link: str = "pipe", tcp_port: int | None = None, *,
                 semihosting: bool = False) -> list[str]:
    """The QEMU command line for an mps2-an386 image, UART0 on stdio or a TCP server."""
    exe = shutil.which(QEMU)
    if exe is None:
        raise EmulatorError(f"{QEMU} not found: install it (sudo apt-get install "
                            "qemu-system-arm, or run `make setup`)")
    if link == "pipe":
        chardev = "stdio"
    else:
        # nodelay=on: without it Nagle holds each small reply back for ~40 ms.
        chardev = f"socket,host=127.0.0.1,port={tcp_port},server=on,wait=off,nodelay=on"
    return [exe, *qemu_args(chardev, semihosting=semihosting), "-kernel", str(elf)]


def _check_elf(elf: str | Path) -> Path:
    path = Path(elf)
    if not path.is_file():
        raise EmulatorError(f"firmware image not found: {path} (build it first)")
    return path


@contextlib.contextmanager
def qemu(elf: str | Path, *, link: str = "pipe",
         max_seconds: float | None = None) -> Iterator[Emulator]:
    """QEMU ``mps2-an386`` running ``elf``; UART0 on stdio pipes (default, fastest) or a TCP
    chardev with nodelay on a free loopback port (link "tcp")."""
    path = _check_elf(elf)
    if link == "tcp":
        # The port is free when picked but could be taken before QEMU binds it: retry then.
        for attempt in range(3):
            port = free_port()
            try:
                emu = start(qemu_command(path, "tcp", port), "qemu", link="tcp", tcp_port=port,
                            max_seconds=max_seconds)
                break
            except EmulatorError as exc:
                if "in use" not in str(exc) or attempt == 2:
                    raise
        try:
            yield emu
        finally:
            stop(emu)
    else:
        with run(qemu_command(path), "qemu", max_seconds=max_seconds) as emu:
            yield emu


@contextlib.contextmanager
def host(binary: str | Path, *, link: str = "pipe", args: Sequence[str] = (),
         max_seconds: float | None = None) -> Iterator[Emulator]:
    """The POSIX host build of the firmware on stdin/stdout (link "pipe"), or, for a build
    that takes ``--tcp PORT``, on a TCP port (link "tcp")."""
    path = _check_elf(binary)
    if link == "tcp":
        port = free_port()
        with run([str(path), "--tcp", str(port), *args], "host", link="tcp", tcp_port=port,
                 max_seconds=max_seconds) as emu:
            yield emu
    else:
        with run([str(path), *args], "host", max_seconds=max_seconds) as emu:
            yield emu


def renode_command(elf: str | Path, tcp_port: int,
                   script: str | Path = RENODE_SCRIPT) -> list[str]:
    """Renode headless, running ``renode/nano33ble.resc`` with ``$bin`` = elf and ``$port`` =
    the UART's server socket port (the script connects uart0 to it without telnet).

    ``--disable-xwt --console``: no GUI, the monitor on stdio (without ``--console`` it would
    listen on TCP port 1234, which parallel runs would share); ``--hide-log``: no log on the
    console (``start`` still drains stdout, where the monitor writes)."""
    exe = shutil.which(RENODE)
    if exe is None:
        raise EmulatorError("renode not found on PATH: install Renode (renode.io) or use "
                            "--emulate qemu")
    script = Path(script)
    if not script.is_file():
        raise EmulatorError(f"Renode script not found: {script}")
    setup = f"$bin=@{Path(elf).resolve()}; $port={tcp_port}; include @{script.resolve()}"
    return [exe, "--disable-xwt", "--console", "--hide-log", "--plain", "-e", setup]


@contextlib.contextmanager
def renode(elf: str | Path, *, max_seconds: float | None = None,
           script: str | Path = RENODE_SCRIPT) -> Iterator[Emulator]:
    """Renode's Nano 33 BLE running the ``nano33ble_renode`` ELF, UART0 on ``socket://``."""
    path = _check_elf(elf)
    port = free_port()
    with run(renode_command(path, port, script), "renode", link="tcp", tcp_port=port,
             max_seconds=max_seconds, start_seconds=RENODE_START_SECONDS) as emu:
        yield emu


def emulate(kind: str, image: str | Path, *, link: str = "pipe",
            max_seconds: float | None = None) -> contextlib.AbstractContextManager[Emulator]:
    """``qemu``, ``renode`` or ``host`` by name (what ``tools/bench.py --emulate`` takes)."""
    if kind == "qemu":
        return qemu(image, link=link, max_seconds=max_seconds)
    if kind == "host":
        return host(image, link=link, max_seconds=max_seconds)
    if kind == "renode":
        return renode(image, max_seconds=max_seconds)
    raise UserError(f"unknown emulator {kind!r}: choose qemu, renode or host")
