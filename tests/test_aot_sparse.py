"""The AOT backend's block-sparse fully connected format (kernels_sparse.h, NT_FC_BLOCK8X2).

Dense layers whose weights have whole 2 x 8 blocks (two output rows x eight inputs) at zero, as
`trainer train --prune-block 8x2` leaves them, are converted to full-int8 .tflite; the generator
must choose the sparse kernel for them (and the dense one when sparse is not smaller), and the
generated C, built with gcc and ASan/UBSan, must match the TFLM reference byte for byte on
random int8 inputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_aot_kernels import _convert, _reference

from trainer.aot import generate
from trainer.aot.host import RUNNER_C, build_runner, run_runner
from trainer.aot.lower_nn import fc_block8x2, fc_block8x2_bytes

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _decode(sparse: tuple[np.ndarray, np.ndarray, np.ndarray], rows: int,
            depth: int) -> np.ndarray:
    """Dense (rows, depth) weights back from NT_FC_BLOCK8X2 (the format as kernels_sparse.h
    documents it, read independently of the encoder)."""
    wv, iv, cv = sparse
    body, tail = depth // 8 * 8, depth % 8
    w = np.zeros((rows, depth), np.int8)
    pos = k = 0
    for j in range(rows // 2):
        for _ in range(int(cv[j])):
            b = int(iv[k])
            k += 1
            w[2 * j, 8 * b:8 * b + 8] = wv[pos:pos + 8]
            w[2 * j + 1, 8 * b:8 * b + 8] = wv[pos + 8:pos + 16]
            pos += 16
        w[2 * j, body:] = wv[pos:pos + tail]
        w[2 * j + 1, body:] = wv[pos + tail:pos + 2 * tail]
        pos += 2 * tail
    assert pos == wv.size and k == iv.size
    return w


def _block_pruned(rng, depth: int, rows: int, keep: float) -> np.ndarray:
    """A Keras (depth, rows) kernel with whole (8 inputs x 2 outputs) blocks zeroed."""
    w = rng.uniform(-1, 1, size=(depth, rows)).astype(np.float32)
    body = depth // 8 * 8
    mask = rng.random((body // 8, rows // 2)) < keep
    w[:body] *= np.repeat(np.repeat(mask, 8, axis=0), 2, axis=1)
    return w


def _mlp(depths: list[int], keep: float | list[float], seed: int):
    from trainer.tf import keras as k

    rng = np.random.default_rng(seed)
    inp = k.Input((depths[0],), batch_size=1)
    x = inp
    keeps = keep if isinstance(keep, list) else [keep] * (len(depths) - 1)
    for i, n in enumerate(depths[1:]):
        layer = k.layers.Dense(n, activation="relu" if i < len(depths) - 2 else None)
        x = layer(x)
        layer.set_weights([_block_pruned(rng, depths[i], n, keeps[i]),
                           rng.uniform(-0.5, 0.5, n).astype(np.float32)])
    return k.Model(inp, x)


def test_format_round_trips_and_refuses_odd_shapes() -> None:
    rng = np.random.default_rng(0)
    for rows, depth in ((2, 8), (10, 60), (80, 784), (6, 14), (4, 2)):
        w = rng.integers(-127, 128, size=(rows, depth), dtype=np.int8)
        for j in range(rows // 2):
            for b in range(depth // 8):
                if rng.random() < 0.6:
                    w[2 * j:2 * j + 2, 8 * b:8 * b + 8] = 0
        sparse = fc_block8x2(w)
        assert np.array_equal(_decode(sparse, rows, depth), w)
        assert fc_block8x2_bytes(sparse) == sum(a.nbytes for a in sparse)
    assert fc_block8x2(np.ones((3, 16), np.int8)) is None  # odd rows
    assert fc_block8x2(np.ones((4, 15), np.int8)) is None  # odd depth
    assert fc_block8x2(np.ones((2, 8 * 257), np.int8)) is None  # block index > uint8


@pytest.mark.parametrize(("depths", "keep", "seed"), [
    ([64, 24, 10], 0.25, 0),   # depth multiple of 8
    ([60, 18, 6], 0.3, 1),     # 60 = 7 blocks + a 4-input tail
    ([94, 40, 12], 0.1, 2),    # 94 = 11 blocks + 6, and pairs with no block at all
])
def test_sparse_fc_matches_tflm(depths: list[int], keep: float, seed: int,
                                tmp_path: Path) -> None:
    model = _mlp(depths, keep, seed)
    tfl = _convert(model, (depths[0],), -2.0, 2.5, seed)
    res = generate(tfl, tmp_path)
    src = res.source.read_text()
    assert src.count("nt_fully_connected_sparse(") == len(depths) - 1
    assert '#include "kernels_sparse.h"' in src
    dense = generate(tfl, tmp_path / "dense", sparse=False)
    assert res.const_bytes < dense.const_bytes
    exe = build_runner(tmp_path, RUNNER_C)
    rng = np.random.default_rng(seed + 1000)
    x = rng.integers(-128, 128, size=(64, depths[0]), dtype=np.int8)
    want = _reference(tfl, x)
    got = run_runner(exe, x, want.shape[1])
    assert np.array_equal(got, want)


def test_dense_chosen_when_sparse_is_not_smaller(tmp_path: Path) -> None:
    # No zero block: 17 bytes per block plus the counts is more than 16 per block dense.
    tfl = _convert(_mlp([48, 16, 10], 1.0, 3), (48,), -1.0, 1.0, 3)
    src = generate(tfl, tmp_path / "a").source.read_text()
    assert "nt_fully_connected_sparse" not in src and "kernels_sparse.h" not in src
    # Per layer: the block-pruned first layer sparse, the unpruned second dense.
    tfl = _convert(_mlp([48, 16, 10], [0.2, 1.0], 4), (48,), -1.0, 1.0, 4)
    res = generate(tfl, tmp_path / "b")
    src = res.source.read_text()
    assert src.count("nt_fully_connected_sparse(") == 1
    assert src.count("nt_fully_connected_fast(") + src.count("nt_fully_connected(") == 1
    exe = build_runner(tmp_path / "b", RUNNER_C)
    x = np.random.default_rng(5).integers(-128, 128, size=(64, 48), dtype=np.int8)
    want = _reference(tfl, x)
    assert np.array_equal(run_runner(exe, x, want.shape[1]), want)


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_dsp_sparse_kernel_matches_c99_and_reference_on_qemu(tmp_path: Path) -> None:
    """sparse_check.c: random shapes and block masks, the DSP sparse kernel vs the c99 one vs a
    naive dense reference, byte for byte, on the emulated Cortex-M4."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    port, kernels = root / "firmware" / "ports" / "qemu", root / "firmware" / "lib" / "backend_aot"
    elf = tmp_path / "sparse_check.elf"
    subprocess.run(["make", "-s", "-C", str(port), f"MAIN={port / 'sparse_check.c'}",
                    (f"SRCS={kernels / 'fully_connected_sparse_dsp.c'} "
                     f"{kernels / 'fully_connected_sparse_c99.c'}"),
                    f"INCLUDES={kernels}", f"OUT={elf}"],
                   check=True, capture_output=True, timeout=300)
    from nanobench.emulate import qemu_command

    r = subprocess.run(qemu_command(elf, semihosting=True),
                       check=False, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    text = r.stdout.decode("ascii", "replace")
    assert "sparse_check: pass 120/120 (dsp, c99, reference)" in text, text[-2000:]
    assert r.returncode == 0
