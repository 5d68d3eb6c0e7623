"""`graphspec build | run` through click's test runner, shared by tests/test_backends_cli.py and
tests/test_rpc_tuning.py: a tiny GPT-2, and the outputs of `graphspec run` of build directories
on one input, for comparing a tuned library with an untuned one."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from graphspec.cli.main import main

# GPT-2 with vocabulary 100, width 32, 1 layer, 2 heads, 8 tokens: every build takes seconds
GPT = ["--set", "vocab=100", "--set", "d=32", "--set", "L=1", "--set", "h=2", "--set", "n_ctx=16",
       "--set", "seq_len=8"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def manifest(d):
    return json.loads((d / "manifest.json").read_text())


def run_outputs(tmp_path, *builds, vocab=100, shape=(1, 8)) -> list[np.ndarray]:
    """`graphspec run` of each build directory on the same token ids (numpy seed 0, below
    `vocab`, saved as tmp_path/ids.npy): their outputs, in order."""
    np.save(tmp_path / "ids.npy", np.random.default_rng(0).integers(0, vocab, shape))
    outs = []
    for d in builds:
        r = cli("run", d, "--input", tmp_path / "ids.npy", "-o", tmp_path / f"{d.name}.npy")
        assert r.exit_code == 0, r.output
        outs.append(np.load(tmp_path / f"{d.name}.npy"))
    return outs
