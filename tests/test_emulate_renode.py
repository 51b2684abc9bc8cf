"""`--emulate renode` without Renode (issue 16): a stand-in `renode` first on PATH behaves the way
the real one does where it matters to nanobench.emulate:

- `renode` is a bash launcher that runs the real program as a child (Renode's launcher runs
  `dotnet Renode.dll` without exec), so the process nanobench starts is not the one serving;
- the real program writes a lot to stdout (monitor, log), on the path of the emulation: when
  nobody drains the pipe it blocks, and so does the UART;
- it serves the firmware's UART on the socket port the .resc opens (`$port`, raw TCP), here by
  relaying to the host build of the firmware (firmware/ports/host) running on stdio pipes;
- it ignores SIGTERM (a slow shutdown), so only SIGKILL to the whole group ends it.

The bench must finish, and afterwards no process of the launcher's group may be left.
On the old emulate.py (stdout never drained, only the launcher terminated) both fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IMAGES = 40
FLOOD_BYTES = 1 << 20  # 1 MiB of "log" at connect, 16 pipe buffers' worth

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("bash") is None,
                                reason="gcc and bash are needed for the host firmware build")

LAUNCHER = """#!/usr/bin/env bash
# Stand-in for Renode's launcher: runs the program as a child, not with exec.
echo "launcher $$" >> "{pids}"
"{python}" "{program}" "$@"
"""

PROGRAM = r'''
import os, re, signal, socket, subprocess, sys, threading

pids, args = sys.argv[1], sys.argv[2:]
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a slow shutdown: only SIGKILL ends it
setup = args[args.index("-e") + 1]
elf = re.search(r"\$bin=@([^;]+);", setup).group(1)
port = int(re.search(r"\$port=(\d+);", setup).group(1))
resc = re.search(r"include @(\S+)$", setup).group(1)
assert "CreateServerSocketTerminal $port" in open(resc).read()
fw = subprocess.Popen([elf], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
with open(pids, "a") as fh:
    fh.write(f"renode {os.getpid()}\nfirmware {fw.pid}\n")
log = sys.stdout.buffer

def say(text):  # the log, on the emulation's path as in Renode: blocks when stdout is full
    log.write(text.encode() + b"\n")
    log.flush()

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
conn, _ = srv.accept()
say("x" * FLOOD)

def to_device():
    while data := conn.recv(4096):
        say(f"uart0: {len(data)} bytes in")
        fw.stdin.write(data)
        fw.stdin.flush()

threading.Thread(target=to_device, daemon=True).start()
while data := os.read(fw.stdout.fileno(), 4096):
    say(f"uart0: {len(data)} bytes out")
    conn.sendall(data)
signal.pause()
'''.replace("FLOOD", str(FLOOD_BYTES))


def _alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def host_firmware() -> Path:
    from nanobench import firmware

    return firmware.build_host(None, sanitize=False)


def test_bench_over_a_standin_renode_finishes_and_leaves_nothing(tmp_path, host_firmware,
                                                                 monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("checks processes through /proc")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pids = tmp_path / "pids.txt"
    program = tmp_path / "standin_renode.py"
    program.write_text(PROGRAM)
    launcher = bindir / "renode"
    launcher.write_text(LAUNCHER.format(pids=pids, python=sys.executable, program=program)
                        .replace('"$@"', f'"{pids}" "$@"'))
    launcher.chmod(0o755)
    out = tmp_path / "run"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    started: dict[str, int] = {}
    try:
        r = subprocess.run(
            [sys.executable, str(REPO / "tools" / "bench.py"), "--emulate", "renode",
             "--elf", str(host_firmware), "--limit", str(IMAGES), "--timeout", "5",
             "--out", str(out), "-q"],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False)
        started = {k: int(v) for k, v in (ln.split() for ln in pids.read_text().splitlines())}
        assert r.returncode == 0, f"bench failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        s = json.loads((out / "summary.json").read_text())
        assert s["n"] == IMAGES and s["lost"] == 0 and s["agreement"] == 1.0
        assert s["emulator"] == "renode"
        assert set(started) == {"launcher", "renode", "firmware"}
        # The launcher led its own group; the other two are its child and grandchild.
        deadline = time.monotonic() + 5  # orphans are reaped by init, not by us
        while time.monotonic() < deadline and any(_alive(p) for p in started.values()):
            time.sleep(0.05)
        survivors = {k: p for k, p in started.items() if _alive(p)}
        assert not survivors, f"processes left after the bench: {survivors}"
        assert not _group_alive(started["launcher"])
        # Renode itself is told to keep its log off the console.
        from nanobench import emulate

        monkeypatch.setenv("PATH", env["PATH"])
        cmd = emulate.renode_command(host_firmware, 1)
        assert cmd[0] == str(launcher) and "--hide-log" in cmd and "--console" in cmd
    finally:
        for pid in started.values():  # never leave anything behind, even on failure
            if _alive(pid):
                os.kill(pid, 9)
