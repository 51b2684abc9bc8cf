"""Fuzzing the firmware's protocol handling as a benchmark: frames, failures, frames per second.

``run`` streams seeded fuzz frames to the host build (ASan/UBSan) or the QEMU image over stdio
pipes and checks every reply against its own oracle:

- every non-empty chunk between two 0x00 delimiters gets exactly one reply frame, in order;
- a chunk that is not a valid request gets an ERROR frame;
- a valid request gets its own reply type with its sequence number, and every INFER /
  INFER_RLE result equals the TFLM reference (scores value for value, class = first argmax).
  The images and their reference outputs come from the caller (``nanolab.bench``).

A frame ("item") is one of: a valid INFER or INFER_RLE of a pool image, a valid HELLO / STATS /
RESET / SELFTEST, random bytes (with and without zeros), a valid frame with flipped bits, with a
bad CRC, with a wrong length field (CRC made to match), cut short, with bytes deleted, inserted,
duplicated or swapped, an oversize frame, an empty frame. Each item ends with a delimiter; the
bytes of a batch reach the device in random splits. A process that exits is a crash (and is
restarted), sanitizer output on stderr is a report, a batch without every reply after
``hang_s`` seconds is a hang (the process is restarted).

``libfuzzer`` builds ``firmware/ports/host/fuzz_core.c`` (core.c + protocol.c, coverage-guided,
clang) and runs it for a number of seconds from a seed corpus of valid frames.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nanobench import firmware
from nanobench import protocol as proto
from nanocore.errors import UserError

log = logging.getLogger(__name__)
# Commands a fuzz item sends besides INFER (HELLO and STATS twice: they are the common ones).
_COMMANDS = (proto.HELLO, proto.STATS, proto.RESET, proto.HELLO, proto.STATS, proto.SELFTEST)

SANITIZER_RE = re.compile(rb"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")
BATCH = {"host": 400, "qemu": 40}  # items per batch: QEMU answers INFER far slower
HANG_SECONDS = {"host": 20.0, "qemu": 90.0}  # no reply progress for this long: a hang
POOL_IMAGES = 12  # MNIST test images in the INFER pool (plus 4 synthetic ones)
# (kind, weight): how often each kind of item is drawn.
KINDS = (
    ("infer", 8), ("infer_rle", 5), ("command", 4), ("random", 14), ("random_zeros", 5),
    ("flip", 16), ("bad_crc", 9), ("bad_length", 8), ("truncated", 10), ("mutate", 14),
    ("oversize", 2), ("empty", 5),
)


@dataclass
class FuzzStats:
    """What a fuzz run found; ``examples`` holds the first few failures, one line each."""

    target: str
    seed: int
    frames: int = 0  # items sent (each ends with a delimiter)
    chunks: int = 0  # non-empty chunks, each owed exactly one reply
    infers_checked: int = 0  # INFER results compared with the TFLM reference
    crashes: int = 0
    sanitizer_reports: int = 0
    mismatches: int = 0
    hangs: int = 0
    restarts: int = 0
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C: the figures cover the frames sent until then
    kinds: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def clean(self) -> bool:
        return not (self.crashes or self.sanitizer_reports or self.mismatches or self.hangs)

    def note(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)
        log.warning("%s", text)

    def line(self) -> str:
        return (f"target {self.target}  seed {self.seed}  frames {self.frames:,}  chunks "
                f"{self.chunks:,}  infers checked {self.infers_checked:,}  crashes "
                f"{self.crashes}  sanitizer reports {self.sanitizer_reports}  mismatches "
                f"{self.mismatches}  hangs {self.hangs}  frames/s {self.frames_per_s:,.0f}  "
                f"({self.seconds:.1f} s)" + ("  INTERRUPTED" if self.interrupted else ""))


@dataclass(frozen=True)
class _Expect:
    """What one chunk must get back: ``seq``/``rtype`` of a valid request (None: an ERROR
    frame), ``image`` the pool index for INFER results."""

    rtype: int | None = None
    seq: int | None = None
    image: int | None = None


class _Proc:
    """The firmware process on stdio pipes; a thread decodes what it prints."""

    def __init__(self, argv: list[str]) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, bufsize=0)
        self.packets: list[proto.Packet] = []
        self.other: list[proto.Event] = []
        self._cv = threading.Condition()
        self._dec = proto.FrameDecoder()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                with self._cv:
                    self._cv.notify_all()
                return
            evs = self._dec.feed(data)
            with self._cv:
                for e in evs:
                    (self.packets if isinstance(e, proto.Packet) else self.other).append(e)
                self._cv.notify_all()

    def send(self, data: bytes, rng: random.Random) -> bool:
        """Write ``data`` in random splits; False when the process is gone."""
        i = 0
        try:
            while i < len(data):
                n = rng.choice((1, 7, 64, 500, 4096, 65536))
                self.proc.stdin.write(data[i:i + n])
                i += n
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def wait_packets(self, n: int, hang_s: float) -> bool:
        """Wait until ``n`` packets arrived; False after ``hang_s`` without progress or when
        the process ended."""
        with self._cv:
            last, seen = time.monotonic(), len(self.packets)
            while len(self.packets) < n:
                if not self._thread.is_alive():
                    return False
                if len(self.packets) != seen:
                    last, seen = time.monotonic(), len(self.packets)
                if time.monotonic() - last > hang_s:
                    return False
                self._cv.wait(0.2)
            return True

    def take(self) -> tuple[list[proto.Packet], list[proto.Event]]:
        with self._cv:
            got, self.packets = self.packets, []
            other, self.other = self.other, []
            return got, other

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> bytes:
        self._err.seek(0)
        return self._err.read()

    def close(self) -> int | None:
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._thread.join(5)
        return code


class _Generator:
    """Seeded fuzz items over a pool of images with known reference outputs."""

    def __init__(self, rng: random.Random, images: np.ndarray) -> None:
        self.rng = rng
        self.images = images
        self.seq = 0
        self._pixels = [proto.encode_pixels(img) for img in images]
        self._rle = [proto.encode_pixels_rle(img) for img in images]
        self._kinds = [k for k, _ in KINDS]
        self._weights = [w for _, w in KINDS]

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % proto.SEQ_NONE  # never the device's "unreadable" marker
        return self.seq

    def _valid(self) -> tuple[bytes, _Expect, str]:
        """A valid request packet (not yet framed)."""
        rng = self.rng
        r = rng.random()
        seq = self._next_seq()
        if r < 0.7:
            k = rng.randrange(len(self.images))
            return (proto.build_packet(proto.INFER, seq, self._pixels[k]),
                    _Expect(proto.INFER | proto.REPLY_FLAG, seq, k), "infer")
        if r < 0.95:
            k = rng.randrange(len(self.images))
            return (proto.build_packet(proto.INFER_RLE, seq, self._rle[k]),
                    _Expect(proto.INFER_RLE | proto.REPLY_FLAG, seq, k), "infer_rle")
        ptype = rng.choice(_COMMANDS)
        return proto.build_packet(ptype, seq), _Expect(ptype | proto.REPLY_FLAG, seq), "command"

    def item(self) -> tuple[str, bytes, _Expect | None]:
        """(kind, bytes ending with a delimiter, expectation for a valid request or None)."""
        rng = self.rng
        kind = rng.choices(self._kinds, self._weights)[0]
        if kind in ("infer", "infer_rle", "command"):
            seq = self._next_seq()
            if kind == "command":
                ptype = rng.choice(_COMMANDS)
                expect = _Expect(ptype | proto.REPLY_FLAG, seq)
                return kind, proto.encode_request(ptype, seq), expect
            k = rng.randrange(len(self.images))
            ptype, body = (proto.INFER, self._pixels[k]) if kind == "infer" else \
                (proto.INFER_RLE, self._rle[k])
            expect = _Expect(ptype | proto.REPLY_FLAG, seq, k)
            return kind, proto.encode_request(ptype, seq, body), expect
        if kind == "empty":
            return kind, b"\x00", None
        if kind == "random":
            n = rng.choice((1, 2, 5, 20, 100, 600, 1100))
            return kind, _nonzero(rng, n) + b"\x00", None
        if kind == "random_zeros":
            n = rng.choice((5, 50, 400))
            return kind, rng.randbytes(n) + b"\x00", None
        if kind == "oversize":
            n = rng.randrange(proto.MAX_FRAME + 1, 3 * proto.MAX_FRAME)
            return kind, _nonzero(rng, n) + b"\x00", None
        packet, _, _ = self._valid()
        if kind == "bad_crc":
            b = bytearray(packet)
            b[-1 - rng.randrange(4)] ^= 1 << rng.randrange(8)
            return kind, proto.encode_frame(bytes(b)), None
        if kind == "bad_length":
            head = bytearray(packet[:-4])
            length = int.from_bytes(head[4:6], "little")
            wrong = rng.choice([length + 1, max(0, length - 1), rng.randrange(0, 65536)])
            if wrong == length:
                wrong = length + 2
            head[4:6] = (wrong & 0xFFFF).to_bytes(2, "little")
            crc = proto.crc32(bytes(head)).to_bytes(4, "little")
            return kind, proto.encode_frame(bytes(head) + crc), None
        frame = bytearray(proto.encode_frame(packet)[:-1])
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(frame))
                frame[i] ^= 1 << rng.randrange(8)
        elif kind == "truncated":
            frame = frame[:rng.randrange(1, len(frame))]
        else:  # mutate
            for _ in range(rng.randint(1, 4)):
                op = rng.randrange(4)
                i = rng.randrange(len(frame))
                if op == 0:
                    del frame[i]
                elif op == 1:
                    frame.insert(i, rng.randrange(256))
                elif op == 2:
                    j = min(len(frame), i + rng.randrange(1, 50))
                    frame[i:i] = frame[i:j]
                else:
                    j = rng.randrange(len(frame))
                    frame[i], frame[j] = frame[j], frame[i]
                if not frame:
                    frame.append(1)
        return kind, bytes(frame) + b"\x00", None


def _nonzero(rng: random.Random, n: int) -> bytes:
    """n random bytes without a zero (one chunk): zeros become a random non-zero value."""
    return rng.randbytes(n).replace(b"\x00", bytes([rng.randrange(1, 256)]))


def _chunks(data: bytes) -> list[bytes]:
    return [c for c in data.split(b"\x00")[:-1] if c]


def synthetic_images() -> np.ndarray:
    """The INFER pool's images that need no dataset: a blank, a full-white and two random
    images (uint8 (4,28,28), seeded); callers put test images before them."""
    rng = np.random.default_rng(10)
    return np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8),
                     rng.integers(0, 256, (28, 28), dtype=np.uint8),
                     rng.integers(0, 256, (28, 28), dtype=np.uint8)])


def target_argv(target: str, model_dir: str | Path | None = None) -> list[str]:
    """Build (if needed) and return the command line of the target firmware on stdio."""
    if target == "host":
        return [str(firmware.build_host(model_dir))]  # ASan + UBSan
    if target == "qemu":
        from nanobench import emulate

        return emulate.qemu_command(firmware.build_qemu(model_dir))
    raise UserError(f"unknown fuzz target {target!r}: choose host, qemu or libfuzzer")


def _check(stats: FuzzStats, expects: list[_Expect | None], chunks: list[bytes],
           got: list[proto.Packet], reference: np.ndarray) -> None:
    """Compare the replies of one batch with what each chunk is owed."""
    if len(got) != len(expects):
        stats.mismatches += abs(len(got) - len(expects))
        stats.note(f"{len(got)} replies for {len(expects)} chunks in a batch")
    for i, (want, pkt) in enumerate(zip(expects, got, strict=False)):
        if want is None:
            if pkt.is_error:
                continue
            # A fuzzed chunk that happens to be a valid request (astronomically rare: the CRC)
            # may be answered; check with the Python twin of the receiver before counting it.
            ev = proto.classify_chunk(chunks[i])
            if isinstance(ev, proto.Packet) and ev.seq == pkt.seq and \
                    pkt.type == ev.type | proto.REPLY_FLAG:
                continue
            stats.mismatches += 1
            stats.note(f"chunk {chunks[i][:16].hex()}... (not a valid request) got "
                       f"type 0x{pkt.type:02x} seq {pkt.seq} instead of an ERROR")
            continue
        if pkt.is_error or pkt.type != want.rtype or pkt.seq != want.seq:
            stats.mismatches += 1
            stats.note(f"request seq {want.seq} type 0x{want.rtype:02x} got type "
                       f"0x{pkt.type:02x} seq {pkt.seq}"
                       + (f" ({proto.error_name(pkt.error_code or 0)})" if pkt.is_error else ""))
            continue
        if want.image is not None:
            try:
                reply = proto.decode_infer_reply(pkt.body)
            except proto.ProtocolError as exc:
                stats.mismatches += 1
                stats.note(f"INFER seq {want.seq}: malformed reply ({exc})")
                continue
            ref = tuple(int(v) for v in reference[want.image])
            stats.infers_checked += 1
            if reply.scores != ref or reply.label != int(np.argmax(reference[want.image])):
                stats.mismatches += 1
                stats.note(f"INFER seq {want.seq} image {want.image}: device {reply.label} "
                           f"{list(reply.scores)} != reference {list(ref)}")


def run(target: str, frames: int, seed: int = 0, *, images: np.ndarray,
        reference: Callable[[np.ndarray], np.ndarray], model_dir: str | Path | None = None,
        batch: int | None = None, hang_s: float | None = None, progress: bool = False,
        report_every: int = 0) -> FuzzStats:
    """Send ``frames`` fuzz items to the ``target`` ("host" or "qemu") firmware built for
    ``model_dir`` (default: the committed model) and check every reply (see the module
    docstring). INFER items carry ``images`` (uint8 (N,28,28)); their results are compared with
    ``reference(images)``, the int8 output vectors of that folder's model (the caller's TFLM
    reference; called once, after the build). ``report_every``: log the figures so far every
    that many frames (0: never). Ctrl-C ends the run early with the figures of the frames
    checked so far (``interrupted``)."""
    if frames < 1:
        raise UserError(f"frames must be >= 1, got {frames}")
    firmware.check_model_dir(model_dir)
    argv = target_argv(target, model_dir)
    reference = np.asarray(reference(images), np.int8).reshape(len(images), -1)
    batch = batch or BATCH[target]
    hang_s = hang_s or HANG_SECONDS[target]
    rng = random.Random(seed)
    gen = _Generator(rng, images)
    stats = FuzzStats(target=target, seed=seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=frames, desc=f"fuzz {target}", unit="frame", mininterval=1.0)

    def start() -> _Proc:
        p = _Proc(argv)
        # The boot line first: the device is up and its boot output is out of the way.
        deadline = time.monotonic() + hang_s
        while time.monotonic() < deadline and p.alive() and not p.other:
            time.sleep(0.02)
        p.take()
        return p

    proc = start()
    t0 = time.monotonic()
    next_report = report_every
    try:
        while stats.frames < frames:
            if report_every and stats.frames >= next_report:
                stats.seconds = time.monotonic() - t0
                log.warning("so far: %s", stats.line())
                next_report += report_every
            n = min(batch, frames - stats.frames)
            parts, expects, chunks = [], [], []
            for _ in range(n):
                kind, data, expect = gen.item()
                stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
                parts.append(data)
                cs = _chunks(data)
                chunks += cs
                # A valid request is exactly one chunk; anything else is owed one error each.
                expects += [expect] if expect is not None else [None] * len(cs)
            stream = b"".join(parts)
            sent = proc.send(stream, rng)
            ok = sent and proc.wait_packets(len(expects), hang_s)
            got, other = proc.take()
            stats.frames += n
            stats.chunks += len(expects)
            if bar is not None:
                bar.update(n)
            crashed = not proc.alive()
            if not ok and not crashed:
                stats.hangs += 1
                stats.note(f"hang: {len(got)} of {len(expects)} replies after {hang_s:g} s "
                           "without progress")
            if other:
                stats.mismatches += len(other)
                stats.note(f"unexpected non-frame output: {other[0]!r}"[:200])
            if ok:
                _check(stats, expects, chunks, got, reference)
            if crashed or not ok:
                code = proc.close() if not crashed else proc.proc.wait()
                err = proc.stderr()
                reports = len(SANITIZER_RE.findall(err))
                stats.sanitizer_reports += reports
                if crashed:
                    stats.crashes += 1
                    stats.note(f"process exited (code {code}): "
                               f"{err[-300:].decode(errors='replace')!r}")
                proc = start()
                stats.restarts += 1
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        stats.seconds = time.monotonic() - t0
        if bar is not None:
            bar.close()
        code = proc.close()
        err = proc.stderr()
        reports = len(SANITIZER_RE.findall(err))
        stats.sanitizer_reports += reports
        if target == "host" and code not in (0, None):
            stats.crashes += 1
            stats.note(f"exit code {code} at the end: {err[-300:].decode(errors='replace')!r}")
    return stats


# ------------------------------------------------------------------------------- libFuzzer


@dataclass
class LibFuzzerStats:
    """One libFuzzer run: seconds, executions, coverage of core.c + protocol.c."""

    seconds: float
    executions: int
    exec_per_s: float
    edges_covered: int  # libFuzzer's "cov:" of the last status line
    edges_total: int  # instrumented edges (core.c + protocol.c only)
    features: int
    corpus: int
    crashes: int
    sanitizer_reports: int
    output_tail: str

    @property
    def clean(self) -> bool:
        return not (self.crashes or self.sanitizer_reports)

    def line(self) -> str:
        pct = 100.0 * self.edges_covered / self.edges_total if self.edges_total else 0.0
        return (f"libFuzzer  seconds {self.seconds:.0f}  executions {self.executions:,}  "
                f"exec/s {self.exec_per_s:,.0f}  coverage {self.edges_covered} of "
                f"{self.edges_total} edges ({pct:.1f} %) in core.c + protocol.c  features "
                f"{self.features}  corpus {self.corpus}  crashes {self.crashes}  sanitizer "
                f"reports {self.sanitizer_reports}")


def seed_corpus(folder: Path, images: np.ndarray) -> int:
    """Write valid frames (every request type, INFER of a few images) as seed inputs."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = [proto.encode_request(t, 1)
             for t in (proto.HELLO, proto.STATS, proto.RESET, proto.SELFTEST)]
    for k, img in enumerate(images[:4]):
        seeds.append(proto.encode_request(proto.INFER, 10 + k, proto.encode_pixels(img)))
        seeds.append(proto.encode_request(proto.INFER_RLE, 20 + k, proto.encode_pixels_rle(img)))
    seeds.append(b"".join(seeds[:3]))
    for i, s in enumerate(seeds):
        (folder / f"seed-{i:02d}").write_bytes(s)
    return len(seeds)


def libfuzzer(seconds: int, seed: int = 0, *, images: np.ndarray,
              corpus: str | Path | None = None,
              model_dir: str | Path | None = None) -> LibFuzzerStats:
    """Run the libFuzzer harness for ``seconds`` from a seed corpus of valid frames (INFER of
    the first four ``images``) in a fresh temp folder, or in ``corpus``, which then keeps what
    it finds between runs."""
    if seconds < 1:
        raise UserError(f"seconds must be >= 1, got {seconds}")
    exe = firmware.build_fuzzer(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        cdir = Path(corpus) if corpus else Path(tmp) / "corpus"
        seed_corpus(cdir / "seeds" if corpus else cdir, images)
        if corpus:
            for f in (cdir / "seeds").iterdir():
                shutil.copy(f, cdir / f.name)
            shutil.rmtree(cdir / "seeds")
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(exe), f"-max_total_time={seconds}", f"-seed={seed + 1}", "-print_final_stats=1",
             f"-artifact_prefix={tmp}/", "-max_len=4096", str(cdir)],
            capture_output=True, text=True, errors="replace", check=False,
            timeout=seconds + 300)
        took = time.monotonic() - t0
        crashes = len(list(Path(tmp).glob("crash-*"))) + len(list(Path(tmp).glob("timeout-*")))
    out = proc.stderr + proc.stdout
    status = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", out)
    total = re.search(r"INFO: Loaded \d+ modules\s+\((\d+) inline 8-bit counters\)", out)
    execs = re.search(r"stat::number_of_executed_units: (\d+)", out)
    rate = re.search(r"stat::average_exec_per_sec:\s+(\d+)", out)
    last = status[-1] if status else ("0", "0", "0", "0")
    if proc.returncode != 0 and not crashes:
        crashes = 1
    if not status and proc.returncode == 0:
        raise UserError(f"libFuzzer printed no status: {out[-300:]!r}")
    return LibFuzzerStats(
        seconds=took, executions=int(execs.group(1)) if execs else int(last[0]),
        exec_per_s=float(rate.group(1)) if rate else 0.0,
        edges_covered=int(last[1]), edges_total=int(total.group(1)) if total else 0,
        features=int(last[2]), corpus=int(last[3]), crashes=crashes,
        sanitizer_reports=len(SANITIZER_RE.findall(out.encode())), output_tail=out[-2000:])
