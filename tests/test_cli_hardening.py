"""Hostile and careless input to the CLI, found by hand (an adversarial pass over every command):
each case must exit 2 with a message that names the option or file and the fix, on stderr,
never a traceback, an allocation sized by the input, or damage on disk.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

GPT = ["--set", "vocab=100", "--set", "d=16", "--set", "L=1", "--set", "h=2", "--set", "n_ctx=16",
       "--set", "seq_len=8"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(r, *needles):
    """Exit 2, no traceback, every needle in stderr."""
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture(scope="module")
def onnx_build(tmp_path_factory):
    """A static batch-1 ONNX build of a tiny GPT-2 (vocabulary 100, 8 tokens)."""
    out = tmp_path_factory.mktemp("b") / "gpt2"
    r = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT)
    assert r.exit_code == 0, r.output
    return out


def _npy_claiming(path, shape):
    """A .npy whose header claims `shape` float32 values, followed by 64 bytes."""
    h = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}".encode()
    h += b" " * (118 - len(h)) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + b"\0" * 64)


@pytest.mark.parametrize("make, needles", [
    (lambda p: np.save(p, np.full((1, 8), 10**9)), ["from 1000000000 to 1000000000", "vocabulary is [0, 100)"]),
    (lambda p: np.save(p, np.full((1, 8), -5)), ["from -5 to -5", "[0, 100)"]),  # ONNX Gather wrapped these
    (lambda p: np.save(p, np.full((1, 8), 3.7)), ["values are float64", "give integers"]),  # was truncated to 3
    (lambda p: np.save(p, np.full((1, 8), np.nan)), ["values are float64"]),
    (lambda p: np.save(p, np.array([["a"] * 8])), ["holds <U1 values", "give numbers"]),
    (lambda p: np.save(p, np.ones((1, 8), dtype=complex)), ["holds complex128 values"]),
    (lambda p: np.save(p, np.ones((0, 8), dtype=np.int64)), ["shape [0, 8]", "B >= 1"]),
    (lambda p: np.save(p, np.ones((3, 8), dtype=np.int64)), ["batch 3", "made for batch 1", "--batch dynamic"]),
    (lambda p: _npy_claiming(p, (10**11, 8)), ["header claims [100000000000, 8]", "truncated or damaged"]),
    (lambda p: p.write_bytes(np.lib.format.magic(1, 0) + b"\x10\x00{'descr': '<i8'"), ["is not a .npy array"]),
])
def test_run_input_files_are_checked_before_the_model_runs(onnx_build, tmp_path, make, needles):
    # each of these reached onnxruntime / torch / numpy and ended in a traceback (IndexError,
    # InvalidArgument, ValueError, a 2.9 TiB _ArrayMemoryError) or ran on silently changed values
    f = tmp_path / "x.npy"
    make(f)
    refused(cli("run", onnx_build, "--input", f, "--repeat", "0"), *needles)


def test_run_input_npz_is_read_without_pickles(onnx_build, tmp_path):
    np.savez(tmp_path / "obj.npz", input_ids=np.array([[object()] * 8], dtype=object))
    refused(cli("run", onnx_build, "--input", tmp_path / "obj.npz"), "holds object values")
    refused(cli("run", onnx_build, "--input", tmp_path), "not a regular file")
    ids = np.random.default_rng(0).integers(0, 100, (1, 8))
    np.savez_compressed(tmp_path / "ok.npz", input_ids=ids.astype(np.int32))
    np.save(tmp_path / "ok.npy", ids)
    outs = []
    for name in ("ok.npz", "ok.npy"):
        r = cli("run", onnx_build, "--input", tmp_path / name, "--repeat", "0", "-o", tmp_path / f"{name}.out.npy")
        assert r.exit_code == 0, r.output
        outs.append(np.load(tmp_path / f"{name}.out.npy"))
    assert outs[0].shape == (1, 8, 100) and np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("cmd", [["build", "gpt2", "-t", "torch", "-o", "unused"], ["verify", "gpt2", "--targets", "torch"]])
def test_a_negative_seed_is_an_option_error(cmd):
    # numpy's default_rng(-1) raised 'expected non-negative integer' from inside random_params
    refused(cli(*cmd, *GPT, "--seed", "-1"), "--seed", "-1 is not in the range x>=0")
