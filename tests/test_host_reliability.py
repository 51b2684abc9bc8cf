"""Issue 10: nothing lost, nothing misreported on the host side under faults, lies and bad input.

One test (or more) per row of the issue's table: unwritable outputs, a device that dies or is
interrupted mid-run, lost samples, lying replies, a malformed HELLO, bad numeric options, odd
image-folder entries, corrupt and wrong-shaped models, the host build's TCP server between
clients. The bench runs in-process (click's CliRunner on tools/bench.py) against the fake
device of test_client.py or the host build of the firmware.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import math
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_client import Behaviour, FakeDevice, fake_scores

import nanobench
from nanobench import protocol as proto
from nanobench.client import Device, DeviceError, Inference, Lost
from nanocore.errors import UserError

REPO = Path(__file__).resolve().parents[1]
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None,
                               reason="no host gcc/make to build the host firmware")


def _bench_main():
    # tools/bench.py of the tree nanobench comes from (the code under test).
    tools = Path(nanobench.__file__).resolve().parents[1] / "tools"
    spec = importlib.util.spec_from_file_location("bench_cli", tools / "bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


BENCH_MAIN = _bench_main()


def bench(*args: str):
    """tools/bench.py in this process: (exit code, stdout, stderr)."""
    res = CliRunner().invoke(BENCH_MAIN, [*args, "-q"], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def trainer_cli(*args: str):
    from nanolab.cli import main

    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def model(tiny_tflite, tmp_path_factory) -> Path:
    """The conftest's briefly trained cnn (cached) as a .tflite file."""
    path = tmp_path_factory.mktemp("model") / "cnn.tflite"
    path.write_bytes(tiny_tflite("cnn", per_channel_dense=False))
    return path


def fake_for(model: Path, **kw) -> FakeDevice:
    """A fake device that reports ``model``'s sha256 (so the bench accepts it)."""
    extra = kw.pop("info_extra", {})
    b = Behaviour(**kw)
    b.info = dict(b.info, model_sha256=hashlib.sha256(model.read_bytes()).hexdigest()[:16],
                  **extra)
    return FakeDevice(b)


@pytest.fixture
def no_mnist(monkeypatch):
    """Loading MNIST is the slow first step: these checks must fail before it."""
    import trainer.data

    def refuse(*a, **k):
        raise AssertionError("MNIST was loaded before the check")

    monkeypatch.setattr(trainer.data, "load_mnist", refuse)


def one_line_error(text: str, start: str = "error: ") -> None:
    assert text.strip().count("\n") == 0, text
    assert text.startswith(start), text


def read_run(folder: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((folder / "summary.json").read_text())
    rows = list(csv.DictReader((folder / "samples.csv").open()))
    return summary, rows


# ----------------------------------------------------- row 1: outputs that cannot be written


def test_unwritable_bench_out_fails_before_streaming(model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with fake_for(model) as fake:
        code, _, err = bench("--port", fake.url, "--model", str(model), "--limit", "20",
                             "--out", str(blocker / "run"))
        assert fake.infer_frames == 0  # nothing streamed, nothing lost
    assert code == 2
    one_line_error(err, "error: cannot write --out")


def test_unwritable_trainer_outputs_fail_first(model, tmp_path, no_mnist):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = trainer_cli("export", str(model), "--out", str(blocker / "m"))
    assert code == 2 and out.startswith("error: cannot write --out"), out
    assert not list(tmp_path.glob("**/model_data*"))
    code, out = trainer_cli("evaluate", str(model), "--json", str(blocker / "r.json"))
    assert code == 2 and out.startswith("error: cannot write --json"), out
    photos = tmp_path / "photos"
    photos.mkdir()
    for opt in ("--sheet", "--json"):
        code, out = trainer_cli("images", str(photos), "--tflite", str(model), opt,
                                str(blocker / "x"))
        assert code == 2 and out.startswith(f"error: cannot write {opt}"), out
        one_line_error(out)


def test_write_failure_after_the_work_is_one_line(tmp_path):
    from nanobench import report

    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write the run folder"):
        report.write_run(blocker / "run", [], {}, "test")


# ------------------------------------- row 2 and must-show 2: a run that ends early keeps data


def test_socket_reset_mid_run_keeps_every_sample(model, tmp_path):
    with fake_for(model, die_after=37) as fake:
        code, _, err = bench("--port", fake.url, "--model", str(model), "--limit", "200",
                             "--window", "1", "--timeout", "1", "--out", str(tmp_path / "run"))
    assert code == 1
    one_line_error(err, "error: the run stopped early")
    assert str(tmp_path / "run") in err
    summary, rows = read_run(tmp_path / "run")
    assert summary["complete"] is False and summary["stop_reason"]
    assert summary["n"] == len(rows) == 37 and summary["images"] == 200
    assert [int(r["index"]) for r in rows] == list(range(37))


@needs_gcc
def test_emulator_killed_mid_bench_writes_the_received_rows(model, tmp_path, monkeypatch):
    """Must show 2: kill -9 of the host build after 120 answered images of 2,000."""
    import contextlib

    from nanobench import client, emulate

    started = []
    real_emulate = emulate.emulate

    @contextlib.contextmanager
    def spy(*a, **k):
        with real_emulate(*a, **k) as emu:
            started.append(emu)
            yield emu

    real_infer_many = client.Device.infer_many

    def infer_many(self, *a, **k):
        for i, out in enumerate(real_infer_many(self, *a, **k)):
            yield out
            if i + 1 == 120:
                started[0].proc.kill()

    monkeypatch.setattr(emulate, "emulate", spy)
    monkeypatch.setattr(client.Device, "infer_many", infer_many)
    code, _, err = bench("--emulate", "host", "--model", str(model), "--limit", "2000",
                         "--timeout", "1", "--out", str(tmp_path / "run"))
    assert code == 1, err
    one_line_error(err, "error: the run stopped early")
    assert str(tmp_path / "run") in err and "exited" in err
    summary, rows = read_run(tmp_path / "run")
    assert summary["complete"] is False and "exited" in summary["stop_reason"]
    # Replies already on their way when the process died may still be read: at least the
    # 120 counted before the kill, far fewer than the 2,000 asked for.
    assert 120 <= summary["n"] == len(rows) < 2000
    assert all(r["agrees"] == "1" for r in rows)  # what arrived is the real result
    assert len({r["index"] for r in rows}) == len(rows)


def test_ctrl_c_mid_run_keeps_every_sample(model, tmp_path, monkeypatch):
    from nanobench import client

    real_infer_many = client.Device.infer_many

    def infer_many(self, *a, **k):
        for i, out in enumerate(real_infer_many(self, *a, **k)):
            yield out
            if i + 1 == 25:
                raise KeyboardInterrupt

    monkeypatch.setattr(client.Device, "infer_many", infer_many)
    with fake_for(model) as fake:
        code, _, err = bench("--port", fake.url, "--model", str(model), "--limit", "100",
                             "--out", str(tmp_path / "run"))
    assert code == 130
    one_line_error(err, "error: the run stopped early (interrupted")
    summary, rows = read_run(tmp_path / "run")
    assert summary["complete"] is False and summary["n"] == len(rows) == 25


def test_lost_budget_stops_the_run(model, tmp_path):
    with fake_for(model, black_hole_mod=3) as fake:
        code, _, _err = bench("--port", fake.url, "--model", str(model), "--limit", "200",
                             "--timeout", "0.3", "--max-lost", "2",
                             "--out", str(tmp_path / "run"))
    assert code == 1
    summary, rows = read_run(tmp_path / "run")
    assert summary["complete"] is False and summary["lost"] == 3
    assert "lost-sample budget" in summary["stop_reason"] and len(rows) == summary["n"] < 200


def test_complete_run_says_so(model, tmp_path):
    with fake_for(model) as fake:
        code, _out, err = bench("--port", fake.url, "--model", str(model), "--limit", "30",
                               "--out", str(tmp_path / "run"))
    assert code == 0, err
    summary, rows = read_run(tmp_path / "run")
    assert summary["complete"] is True and summary["stop_reason"] is None
    assert summary["lost"] == 0 and summary["n"] == len(rows) == 30


# ------------------------------------------ row 3: lost samples, accuracy over the same images


def test_lost_samples_exit_3_and_accuracies_cover_the_same_images(model, tmp_path):
    with fake_for(model, black_hole_mod=4) as fake:
        code, _out, err = bench("--port", fake.url, "--model", str(model), "--limit", "80",
                               "--timeout", "0.3", "--out", str(tmp_path / "run"))
    assert code == 3, err
    assert "images lost" in err and str(tmp_path / "run") in err
    summary, rows = read_run(tmp_path / "run")
    assert summary["complete"] is True and summary["lost"] > 0
    assert summary["n"] + summary["lost"] == summary["images"] == 80 == len(rows) + \
        summary["lost"]
    # The reference figure over exactly the answered rows, recomputed from samples.csv.
    ref = [int(np.argmax([int(v) for v in r["reference"].split()])) == int(r["label"])
           for r in rows]
    dev = [int(r["prediction"]) == int(r["label"]) for r in rows]
    assert summary["reference_accuracy"] == pytest.approx(sum(ref) / len(rows))
    assert summary["accuracy"] == pytest.approx(sum(dev) / len(rows))
    assert summary["labelled"] == len(rows)


# -------------------------------------------- row 4 and must-show 2: a device that lies


@pytest.mark.parametrize("lie", ["label", "class200", "short"])
def test_lying_replies_are_errors_not_results(lie):
    x = np.random.default_rng(3).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    with FakeDevice(Behaviour(lie_every=3, lie=lie)) as fake, \
            Device(fake.url, timeout=1.0) as dev:
        dev.hello()  # output_shape=1x10: the score count each reply must carry
        results = list(dev.infer_many(x, window=4))
        counters = dev.counters
    done = [r for r in results if isinstance(r, Inference)]
    assert sorted(r.index for r in results) == list(range(40))
    for r in done:  # every result is the honest one
        label, scores, _ = fake_scores(x[r.index].tobytes())
        assert (r.label, r.scores) == (label, scores)
    assert counters.malformed >= 13 and counters.errors >= 13


def test_bench_counts_a_lying_device_as_errors(model, tmp_path):
    with fake_for(model, lie_every=2, lie="label") as fake:
        code, _, _err = bench("--port", fake.url, "--model", str(model), "--limit", "40",
                             "--out", str(tmp_path / "run"))
    summary, rows = read_run(tmp_path / "run")
    assert summary["errors"] >= 20 and summary["link"]["malformed"] >= 20
    for r in rows:
        scores = [int(v) for v in r["scores"].split()]
        assert int(r["prediction"]) == int(np.argmax(scores)) and len(scores) == 10
    assert summary["n"] + summary["lost"] == 40
    assert code == (3 if summary["lost"] else 0)


def test_first_maximum_is_the_argmax():
    from nanobench.client import reply_problem

    tie = proto.InferReply(label=2, scores=(0, 5, 5, 1), latency_ticks=1)
    assert reply_problem(tie, 4) == "class byte 2 is not the argmax of the scores (1)"
    assert reply_problem(proto.InferReply(1, (0, 5, 5, 1), 1), 4) is None
    assert "not one of" in reply_problem(proto.InferReply(200, (0, 5, 5, 1), 1), 4)
    assert "4 scores" in reply_problem(proto.InferReply(1, (0, 5, 5, 1), 1), 10)


# ---------------------------------------------------------------- row 5: a malformed HELLO


def test_malformed_hello_is_one_line_naming_the_field(model, tmp_path):
    with fake_for(model, info_extra={"ticks_to_units": "abc"}) as fake:
        code, _, err = bench("--port", fake.url, "--model", str(model), "--limit", "5",
                             "--out", str(tmp_path / "run"))
    assert code == 2
    one_line_error(err)
    assert "ticks_to_units='abc'" in err and "HELLO" in err
    with FakeDevice(Behaviour(info=dict(Behaviour().info, output_shape="1xten"))) as fake, \
            Device(fake.url, timeout=1.0) as dev, pytest.raises(DeviceError, match="output_shape"):
        dev.hello()


# ------------------------------------------------------- rows 6 and 7: numeric options


@pytest.mark.parametrize("limit", ["-9999", "-5", "0"])
def test_evaluate_limit_must_be_positive(model, limit, no_mnist):
    code, out = trainer_cli("evaluate", str(model), "--limit", limit)
    assert code == 2 and "--limit" in out and "Traceback" not in out


def test_evaluate_api_refuses_a_bad_limit():
    from trainer.evaluate import evaluate

    with pytest.raises(UserError, match="limit must be >= 1"):
        evaluate(b"", None, limit=0)


def test_json_never_holds_nan(tmp_path):
    from nanocore import checks

    text = checks.dumps({"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}})
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_bench_timeout_must_be_positive_and_finite(model, timeout):
    code, _, err = bench("--port", "loop://", "--model", str(model), "--timeout", timeout)
    assert code == 2 and "--timeout" in err and "silent" not in err


@pytest.mark.parametrize(("args", "option"), [
    (["train", "--epochs", "0", "--out", "x"], "--epochs"),
    (["train", "--batch-size", "0", "--out", "x"], "--batch-size"),
    (["train", "--train-limit", "-3", "--out", "x"], "--train-limit"),
    (["train", "--learning-rate", "nan", "--out", "x"], "--learning-rate"),
    (["train", "--prune", "1.5", "--out", "x"], "--prune"),
    (["quantize", "m.keras", "--out", "x", "--calibration-count", "0"], "--calibration-count"),
    (["quantize", "m.keras", "--out", "x", "--qat-epochs", "0"], "--qat-epochs"),
    (["synth", "x", "--per-class", "0"], "--per-class"),
])
def test_counts_and_epochs_must_be_positive(args, option, no_mnist):
    code, out = trainer_cli(*args)
    assert code == 2 and option in out, out


# ------------------------------------------------------------- row 8: image-folder entries


def test_every_folder_entry_is_used_or_skipped_and_counted(tmp_path):
    from PIL import Image

    from trainer.data import load_mnist
    from trainer.images import load_folder

    digit = Image.fromarray(255 - load_mnist().x_test[0]).resize((84, 84))
    d = tmp_path / "photos"
    d.mkdir()
    digit.save(d / "7_ok.png")
    digit.save(d / "7_still.gif")  # one frame: used
    frames = [digit, digit.rotate(10)]
    frames[0].save(d / "7_anim.gif", save_all=True, append_images=frames[1:])
    os.symlink(d / "missing.png", d / "7_dangling.png")
    os.symlink(d / "x.png", d / "x.png.tmp")
    os.symlink(d / "x.png.tmp", d / "x.png")  # a loop named x.png
    (d / "notes.txt").write_text("hello")
    f = load_folder(d)
    assert sorted(f.names) == ["7_ok.png", "7_still.gif"]
    reasons = dict(f.skipped)
    assert "animated" in reasons["7_anim.gif"]
    assert "broken symbolic link" in reasons["7_dangling.png"]
    assert "loop" in reasons["x.png"] and "loop" in reasons["x.png.tmp"]
    assert "not an image file" in reasons["notes.txt"]
    entries = len(list(d.iterdir()))
    assert len(f.names) + len(f.skipped) == entries == 7
    assert all("\n" not in r for r in reasons.values())


# --------------------------------------------- rows 9 and 10: corrupt and wrong-shaped models


def _five_output_model(tflite: bytes) -> bytes:
    """The same flatbuffer with its output tensor declared as 5 classes."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    sub = m.subgraphs[0]
    sub.tensors[sub.outputs[0]].shape = np.array([1, 5], np.int32)
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _corrupt(tflite: bytes) -> bytes:
    c = bytearray(tflite)
    c[40:120] = bytes((i * 37 + 11) % 256 for i in range(80))
    return bytes(c)


@pytest.mark.parametrize("kind", ["corrupt", "not_tflite", "five_outputs"])
def test_evaluate_refuses_bad_models_before_loading_data(model, tmp_path, kind, no_mnist):
    data = model.read_bytes()
    bad = tmp_path / f"{kind}.tflite"
    bad.write_bytes({"corrupt": _corrupt(data), "not_tflite": b"PK\x03\x04 a zip file" * 50,
                     "five_outputs": _five_output_model(data)}[kind])
    code, out = trainer_cli("evaluate", str(bad))
    assert code == 2
    one_line_error(out)
    assert str(bad) in out
    assert {"corrupt": "damaged TFLite", "not_tflite": "not a TFLite",
            "five_outputs": "5 outputs"}[kind] in out


def test_bench_refuses_a_model_without_ten_classes(model, tmp_path):
    bad = tmp_path / "five.tflite"
    bad.write_bytes(_five_output_model(model.read_bytes()))
    with fake_for(bad) as fake:
        code, _, err = bench("--port", fake.url, "--model", str(bad), "--limit", "5",
                             "--out", str(tmp_path / "run"))
        assert fake.infer_frames == 0
    assert code == 2 and "5 outputs" in err
    one_line_error(err)


# ------------------------------------------- row 11: the host build's TCP server, next client


@needs_gcc
def test_tcp_server_starts_each_client_with_a_clean_receiver():
    from nanobench import emulate, firmware

    exe = firmware.build_host(standin=True)
    port = emulate.free_port()
    proc = subprocess.Popen([str(exe), "--tcp", str(port)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                first = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "host build did not listen"
                time.sleep(0.05)
        frame = proto.encode_request(proto.INFER, 0x1234, bytes(range(256)) * 3)
        first.sendall(frame[:300])  # leaves mid-frame
        time.sleep(0.2)
        first.close()
        second = socket.create_connection(("127.0.0.1", port), timeout=5)
        # A frame of its own, without a delimiter in front (what pyserial's first write is).
        second.sendall(proto.encode_request(proto.HELLO, 7))
        dec = proto.FrameDecoder()
        packets: list[proto.Packet] = []
        deadline = time.monotonic() + 5
        while not packets and time.monotonic() < deadline:
            packets += [e for e in dec.feed(second.recv(4096)) if isinstance(e, proto.Packet)]
        second.close()
        assert packets, "no reply to the second client's HELLO"
        assert (packets[0].type, packets[0].seq) == (proto.HELLO | proto.REPLY_FLAG, 7), \
            packets[0]
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------- the client never yields a lie as a result


def test_lost_is_never_a_result_even_when_every_reply_lies():
    x = np.zeros((5, 28, 28), np.uint8)
    with FakeDevice(Behaviour(lie_every=1, lie="class200")) as fake, \
            Device(fake.url, timeout=0.5, retries=1) as dev:
        dev.hello()
        results = list(dev.infer_many(x, window=2))
    assert all(isinstance(r, Lost) and "malformed" in r.reason for r in results)


# ------------------------------------------------------- rows 12 and 13: one QAT path


def test_train_qat_points_to_the_one_qat_path(tmp_path, no_mnist):
    code, out = trainer_cli("train", "--model", "seed_final", "--qat", "--out",
                            str(tmp_path / "m"))
    assert code == 2 and "quantize OUT/model.keras --qat" in out
    one_line_error(out)
    assert not (tmp_path / "m").exists()


def test_qat_of_a_pruned_model_keeps_and_reports_its_sparsity(mnist, tmp_path):
    from trainer.config import ModelConfig, TrainConfig
    from trainer.train import train

    tcfg = TrainConfig(epochs=1, train_limit=1500, batch_size=64, prune_sparsity=0.75,
                       prune_begin_epoch=0, prune_end_fraction=0.5)
    res = train(ModelConfig(name="seed_final"), tcfg, mnist, progress=False)
    res.model.save(tmp_path / "model.keras")
    cfg = tmp_path / "qat.toml"
    cfg.write_text("[train]\ntrain_limit = 1500\nqat_epochs = 1\nbatch_size = 64\n"
                   "[quant]\ncalibration_count = 50\n")
    code, out = trainer_cli("quantize", str(tmp_path / "model.keras"), "--qat", "--config",
                            str(cfg), "--out", str(tmp_path / "q.tflite"), "--no-progress")
    assert code == 0, out
    rec = json.loads((tmp_path / "q.json").read_text())["qat"]
    assert rec["preserve_sparsity"] is True
    assert rec["sparsity_before"] >= 0.7
    assert rec["sparsity_after"] >= rec["sparsity_before"] - 0.01  # QAT did not refill zeros
    int8 = json.loads((tmp_path / "q.json").read_text())["int8_weight_sparsity"]
    assert int8 >= rec["sparsity_before"] - 0.02
    assert "weight sparsity" in out and "before" in out and "after" in out
