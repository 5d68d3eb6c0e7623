"""Issue #14 §2: `graphspec run` does not trust a build directory beyond what it can check.

Every kind of damage the issue lists (and a few more) ends in exit code 2 with a message that
names the file, never a traceback, a SIGBUS, a hang or code run from outside the directory.
Three tiny GPT-2 builds (torch, onnx, llvm) are made once and copied per test.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

GPT = ["--set", "vocab=100", "--set", "d=32", "--set", "L=1", "--set", "h=2", "--set", "n_ctx=16",
       "--set", "seq_len=8"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")
    for t in ("torch", "onnx", "llvm"):
        r = cli("build", "gpt2", "--target", t, "-o", root / t, *GPT)
        assert r.exit_code == 0, r.output
    r = cli("build", "gpt2", "--target", "torch", "-o", root / "other", *GPT, "--set", "d=16")
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def copy(builds, tmp_path):
    def make(target: str) -> Path:
        d = tmp_path / target
        shutil.copytree(builds / target, d)
        return d
    return make


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def write_manifest(d: Path, m) -> None:
    (d / "manifest.json").write_text(json.dumps(m))


def rehash(d: Path) -> None:
    """Record the artifacts' current sha256 (a careless or hostile edit that keeps them consistent)."""
    m = manifest(d)
    for name in m["artifacts"].values():
        p = d / name
        if p.is_file():
            m["files"][name] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
    write_manifest(d, m)


def refused(d: Path, *needles: str):
    r = cli("run", d, "--repeat", 0)
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output and r.stderr.startswith("error: ")
    for n in needles:
        assert n in r.stderr, r.stderr
    return r.stderr


def test_intact_builds_run(builds):
    outs = {}
    for t in ("torch", "onnx", "llvm"):
        r = cli("run", builds / t, "-o", builds / f"{t}.npy")
        assert r.exit_code == 0, r.output
        outs[t] = np.load(builds / f"{t}.npy")
    np.testing.assert_allclose(outs["onnx"], outs["torch"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outs["llvm"], outs["torch"], rtol=1e-4, atol=1e-5)
    m = manifest(builds / "torch")
    assert m["format"] == 2 and m["artifacts"] == {"model": "model.py", "weights": "weights.safetensors"}
    for name, rec in m["files"].items():  # the recorded sha256 is the file's
        assert rec["sha256"] == hashlib.sha256((builds / "torch" / name).read_bytes()).hexdigest()


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')\nimport torch\nclass M(torch.nn.Module):\n    pass\n"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_artifact_outside_the_directory_is_not_run(copy, tmp_path, how):
    """Issue: pointing artifacts.model at a .py elsewhere ran it."""
    d, marker = copy("torch"), tmp_path / "ran.txt"
    evil = tmp_path / "evil.py"
    evil.write_text(_marker_code(marker))
    m = manifest(d)
    if how == "absolute":
        m["artifacts"]["model"] = str(evil)
    elif how == "dotdot":
        m["artifacts"]["model"] = "../evil.py"
    else:
        (d / "model.py").unlink()
        (d / "model.py").symlink_to(evil)
    m["files"][m["artifacts"]["model"]] = {"sha256": hashlib.sha256(evil.read_bytes()).hexdigest()}
    write_manifest(d, m)
    refused(d, "model")
    assert not marker.exists()


def test_pickled_weights_are_never_unpickled(copy, tmp_path):
    """Issue: weights.pt was read with torch.load without weights_only (a pickle executes)."""
    d, marker = copy("torch"), tmp_path / "unpickled.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (d / "weights.safetensors").write_bytes(pickle.dumps({"x": Payload()}))
    rehash(d)
    refused(d, "weights.safetensors", "not a safetensors file")
    assert not marker.exists()


def test_empty_weights_name_the_missing_keys(copy):
    """Issue: an empty weights.pt ran on random weights with exit 0 (strict=False)."""
    from safetensors.torch import save

    d = copy("torch")
    (d / "weights.safetensors").write_bytes(save({}))
    rehash(d)
    # the 1-layer GPT-2's state dict: token and position tables (2), one block's ln_1, qkv,
    # proj, ln_2, fc, mlp proj weights and biases (12), ln_f (2); the head is tied: 2 + 12 + 2 = 16
    refused(d, "16 missing keys ['blocks.0.attn.proj.bias', ", "0 unexpected keys")
    (d / "weights.safetensors").write_bytes(b"")
    rehash(d)
    refused(d, "not a safetensors file")


def test_weights_from_another_build(builds, copy):
    d = copy("torch")
    shutil.copy(builds / "other" / "weights.safetensors", d / "weights.safetensors")
    refused(d, "sha256 differs")  # the swap alone is caught by the checksum
    rehash(d)
    refused(d, "does not fit")  # and with the checksum edited, by the strict load


def test_weights_with_extra_keys(copy):
    from safetensors.torch import load, save

    d = copy("torch")
    sd = load((d / "weights.safetensors").read_bytes())
    import torch

    sd["extra.weight"] = torch.zeros(2)
    (d / "weights.safetensors").write_bytes(save(sd))
    rehash(d)
    refused(d, "1 unexpected keys ['extra.weight']")


def test_syntax_error_in_model_py(copy):
    d = copy("torch")
    with open(d / "model.py", "a") as f:
        f.write("\ndef broken(:\n")
    refused(d, "sha256 differs")
    rehash(d)
    refused(d, "model.py cannot be imported (SyntaxError")


@pytest.mark.parametrize("target, name", [("onnx", "model.onnx"), ("llvm", "model.so"),
                                          ("llvm", "weights.safetensors"), ("torch", "weights.safetensors")])
def test_truncated_artifacts(copy, target, name):
    """Issue: a truncated model.so died with SIGBUS; truncated ONNX / npz / pt gave tracebacks."""
    d = copy(target)
    p = d / name
    size = p.stat().st_size
    with open(p, "r+b") as f:
        f.truncate(size // 2)
    refused(d, name, "sha256 differs", f"the build wrote {size:,}")


def test_truncated_onnx_with_matching_checksum(copy):
    d = copy("onnx")
    with open(d / "model.onnx", "r+b") as f:
        f.truncate(100)
    rehash(d)
    refused(d, "model.onnx is not a model onnxruntime can load")


def test_llvm_weights_from_another_model(copy):
    from safetensors.numpy import load, save

    d = copy("llvm")
    w = load((d / "weights.safetensors").read_bytes())
    w.pop(sorted(w)[0])
    (d / "weights.safetensors").write_bytes(save(w))
    rehash(d)
    refused(d, "1 missing keys")


@pytest.mark.parametrize("text, needle", [
    ("[1, 2, 3]", "JSON list, not an object"),
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ('"\\ud800"', "JSON str"),
])
def test_manifest_not_an_object(copy, text, needle):
    d = copy("onnx")
    (d / "manifest.json").write_text(text)
    refused(d, "manifest.json", needle)


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m.pop("inputs"), "`inputs` is missing"),
    (lambda m: m.update(inputs=[]), "`inputs` is empty"),
    (lambda m: m.update(inputs=[{"name": "x", "dtype": "f32", "shape": [-1, 8]}]), "shape of positive ints"),
    (lambda m: m.update(inputs=[{"name": "x", "dtype": "f32", "shape": [1 << 40]}]), "shape of positive ints"),
    (lambda m: m.update(format=1), "format 1"),
    (lambda m: m.update(target="tpu"), "target 'tpu'"),
    (lambda m: m.update(artifacts=["model.onnx"]), "`artifacts` is missing or not a JSON dict"),
    (lambda m: m.pop("files"), "`files` is missing"),
    (lambda m: m["files"].clear(), "no sha256 recorded"),
    (lambda m: m.update(batch=0), "`batch`"),
    (lambda m: m.update(outputs=[1]), "`outputs`"),
])
def test_manifest_fields(copy, edit, needle):
    d = copy("onnx")
    m = manifest(d)
    edit(m)
    write_manifest(d, m)
    refused(d, needle, "rebuild it")


def test_llvm_manifest_without_tvm_section(copy):
    d = copy("llvm")
    m = manifest(d)
    m.pop("tvm")
    write_manifest(d, m)
    refused(d, "`tvm.inputs` and `tvm.params`")


def test_missing_and_special_artifacts(copy):
    d = copy("onnx")
    (d / "model.onnx").unlink()
    refused(d, "No such file")
    os.mkfifo(d / "model.onnx")  # reading a FIFO would block forever
    refused(d, "not a regular file")
    (d / "model.onnx").unlink()
    (d / "model.onnx").symlink_to("/dev/zero")
    refused(d, "model.onnx")


def test_manifest_is_a_fifo_or_missing(copy, tmp_path):
    d = copy("onnx")
    (d / "manifest.json").unlink()
    refused(d, "not a graphspec build directory")
    os.mkfifo(d / "manifest.json")
    refused(d, "not a regular file")
    refused(tmp_path / "nowhere", "not a graphspec build directory")
