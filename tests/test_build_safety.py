"""Issue #14 §1, §3, §4: what `graphspec build` may replace, where it writes, what it refuses.

Each test first reproduces a finding (the issue's probe) and then asserts the fixed behaviour.
Tiny GPT-2 variants keep each build to a second or two.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from graphspec.backends.build import safe_name
from graphspec.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
GPT = ["--set", "vocab=100", "--set", "d=32", "--set", "L=1", "--set", "h=2", "--set", "n_ctx=16",
       "--set", "seq_len=8"]


def cli(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def tiny_spec(where: Path, name: str) -> Path:
    """specs/gpt2.yaml with another `name:` (a hostile one in these tests)."""
    text = (ROOT / "specs" / "gpt2.yaml").read_text().replace("name: gpt2", f"name: {json.dumps(name)}")
    p = where / "evil.yaml"
    p.write_text(text)
    return p


def dotfiles(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("name, expect", [
    ("../../victim", "victim"), ("/etc/passwd", "etc_passwd"), ("..", "model"), (".hidden", "hidden"),
    ("a b/c\\d", "a_b_c_d"), ("swin_t-1.0", "swin_t-1.0"), ("\udcff", "model"), ("x" * 300, "x" * 64),
])
def test_safe_name(name, expect):
    assert safe_name(name) == expect


def test_spec_name_cannot_escape_build_dir(tmp_path, monkeypatch):
    """Issue: `name: ../../victim` without -o wrote build/../../victim-torch, deleting a file."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    victim = tmp_path / "a" / "victim-torch"  # = work/build/../../victim-torch
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    spec = tiny_spec(tmp_path, "../../victim")
    monkeypatch.chdir(work)
    r = cli("build", spec, "--target", "torch", *GPT)
    assert r.exit_code == 0, r.output
    assert (victim / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
    out = work / "build" / "victim-torch"
    assert json.loads((out / "manifest.json").read_text())["spec"]["name"] == "../../victim"
    assert f"-> {Path('build') / 'victim-torch'}" in r.stdout  # the message names the real place
    assert sorted(p.name for p in (work / "build").iterdir()) == ["victim-torch"]


def test_existing_non_build_dir_is_not_replaced(tmp_path):
    """Issue: `build -o DIR` on a directory with no graphspec manifest silently replaced it."""
    d = tmp_path / "photos"
    d.mkdir()
    (d / "cat.jpg").write_bytes(b"\xff\xd8 not really")
    (d / "manifest.json").write_text('{"name": "my own manifest"}')  # not graphspec's
    r = cli("build", "gpt2", "--target", "onnx", "-o", d, *GPT)
    assert r.exit_code == 2 and str(d) in r.stderr and "not a graphspec build" in r.stderr
    assert "--force" in r.stderr and "Traceback" not in r.output
    assert sorted(p.name for p in d.iterdir()) == ["cat.jpg", "manifest.json"]
    assert dotfiles(tmp_path) == []
    r = cli("build", "gpt2", "--target", "onnx", "-o", d, *GPT, "--force")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in d.iterdir()) == ["manifest.json", "model.onnx"]
    assert dotfiles(tmp_path) == []


def test_empty_dir_and_old_build_are_replaceable(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("build", "gpt2", "--target", "onnx", "-o", empty, *GPT).exit_code == 0
    # a build of another target (or an older graphspec) is a build: replaced without --force
    r = cli("build", "gpt2", "--target", "torch", "-o", empty, *GPT)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in empty.iterdir()) == ["manifest.json", "model.py", "weights.safetensors"]


@pytest.mark.parametrize("out", [".", "..", "sub/..", "/"])
def test_cwd_and_parents_are_refused(tmp_path, monkeypatch, out):
    """Issue: `-o .` crashed (`PosixPath('.') has an empty name`), `-o ..` with EBUSY."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "keep").write_text("x")
    monkeypatch.chdir(work)
    for force in ((), ("--force",)):
        r = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, *force)
        assert r.exit_code == 2, r.output
        assert "current directory or one of its parents" in r.stderr and "Traceback" not in r.output
    assert sorted(p.name for p in work.iterdir()) == ["keep"] and dotfiles(tmp_path) == []


def test_output_that_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    r = cli("build", "gpt2", "--target", "onnx", "-o", f, *GPT)
    assert r.exit_code == 2 and f.read_text() == "x"


def test_codegen_into_existing_dir(tmp_path):
    """Issue: `codegen -o EXISTING_DIR` crashed with IsADirectoryError."""
    r = cli("codegen", "gpt2", "-o", tmp_path, *GPT)
    assert r.exit_code == 2 and "is a directory" in r.stderr and "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []


# -- §4: a full disk -----------------------------------------------------------------------------
def _enospc_after(monkeypatch, root: Path, budget: int):
    """os.write fails with ENOSPC once `budget` bytes went into files under `root`."""
    real, written = os.write, [0]

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(root)):
            if written[0] + len(data) > budget:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written[0] += len(data)
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("target", ["onnx", "torch"])
def test_full_disk_exit_2_old_build_untouched(tmp_path, monkeypatch, target):
    out = tmp_path / "b"
    assert cli("build", "gpt2", "--target", target, "-o", out, *GPT).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _enospc_after(monkeypatch, tmp_path, 1000)  # the model file is ~70 kB: fails inside it
    r = cli("build", "gpt2", "--target", target, "-o", out, *GPT, "--set", "h=4")
    assert r.exit_code == 2, r.output
    assert "No space left on device" in r.stderr and str(out) in r.stderr
    assert "Traceback" not in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert dotfiles(tmp_path) == []  # temporaries and the lock removed


def test_library_export_failure_exit_2(tmp_path, monkeypatch):
    """TVM writes model.so through the C compiler: its failure (a full disk) is not an OSError."""
    from graphspec.backends import tvm as gt

    def export(*a, **k):
        raise RuntimeError("Compilation error:\n/usr/bin/ld: final link failed: No space left on device")

    monkeypatch.setattr(gt, "export_library", export)
    r = cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "l", *GPT)
    assert r.exit_code == 2, r.output
    assert "TVM could not write the library" in r.stderr and "No space left on device" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_full_disk_on_first_build_leaves_nothing(tmp_path, monkeypatch):
    _enospc_after(monkeypatch, tmp_path, 0)
    r = cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "new", *GPT)
    assert r.exit_code == 2 and "No space left on device" in r.stderr
    assert list(tmp_path.iterdir()) == []


# -- §3: the memory budget ----------------------------------------------------------------------
def test_memory_budget_refuses_before_allocating(tmp_path, monkeypatch):
    """Issue: `build --set d=65536` tried to allocate 96 GiB. GPT-2 at d=65536, 1 layer:
    12·d² + (vocab + n_ctx)·d + 13·d... ≈ 51.5e9 parameters = 192 GiB of float32, ×2 copies."""
    from graphspec.backends import weights

    def no_weights(*a, **k):
        raise AssertionError("weights were allocated")

    monkeypatch.setattr(weights, "random_params", no_weights)
    r = cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "big", *GPT, "--set", "d=65536")
    assert r.exit_code == 2, r.output
    assert "would need about 384.1 GiB" in r.stderr and "over the budget" in r.stderr
    r = cli("verify", "gpt2", "--targets", "onnx", *GPT, "--set", "d=65536")
    assert r.exit_code == 2 and "would need about 384.1 GiB" in r.stderr
    assert not (tmp_path / "big").exists() and dotfiles(tmp_path) == []
    # the figure, independently: GPT-2's parameter formula at d=65536, L=1, vocab 100, n_ctx 16
    d, v, n = 65536, 100, 16
    params = v * d + n * d + (2 * d + 3 * d * d + 3 * d + d * d + d + 2 * d + 4 * d * d + 4 * d
                              + 4 * d * d + d) + 2 * d
    assert f"{params * 8 / 2**30:.1f} GiB" == "384.1 GiB"


def test_memory_budget_flag_and_env(tmp_path, monkeypatch):
    # the tiny model: 16,480 params × 4 bytes × 2 copies = 131,840 bytes of weights
    r = cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "a", *GPT, "--memory-budget", "100K")
    assert r.exit_code == 2 and "over the budget of 100.0 KiB (--memory-budget)" in r.stderr
    monkeypatch.setenv("GRAPHSPEC_MEMORY_BUDGET", "100KiB")
    r = cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "a", *GPT)
    assert r.exit_code == 2 and "GRAPHSPEC_MEMORY_BUDGET" in r.stderr
    assert cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "a", *GPT,
               "--memory-budget", "1M").exit_code == 0
    monkeypatch.setenv("GRAPHSPEC_MEMORY_BUDGET", "lots")
    r = cli("run", tmp_path / "a")
    assert r.exit_code == 2 and "is not a size" in r.stderr
    monkeypatch.setenv("GRAPHSPEC_MEMORY_BUDGET", "100K")
    r = cli("run", tmp_path / "a")
    assert r.exit_code == 2 and "running" in r.stderr and "over the budget" in r.stderr


def test_flops_and_inspect_allocate_nothing_at_7b_scale(monkeypatch, tmp_path):
    """A LLaMA-7B-sized GPT (d=4096, 32 layers, 32k vocab: ~6.6e9 params) with a 1 KiB budget."""
    monkeypatch.setenv("GRAPHSPEC_MEMORY_BUDGET", "1K")
    big = ["--set", "d=4096", "--set", "L=32", "--set", "h=32", "--set", "vocab=32000",
           "--set", "n_ctx=4096"]
    r = cli("flops", "gpt2", *big)
    assert r.exit_code == 0, r.output
    # V·d + n_ctx·d + L·(12d² + 13d) + 2d = 131,072,000 + 16,777,216 + 32·201,379,840 + 8,192
    assert "201,379,840" in r.stdout and "6,592,012,288" in r.stdout
    r = cli("inspect", "gpt2", *big)
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)
    r = cli("build", "gpt2", "--target", "onnx", *big)  # 6.6e9 × 4 B × 2 = 49.1 GiB
    assert r.exit_code == 2 and "would need about 49.1 GiB" in r.stderr
    assert list(tmp_path.iterdir()) == []  # a refused build creates nothing, not even build/


# -- rough edges ---------------------------------------------------------------------------------
def test_untuned_llvm_build_prints_the_tune_hint(tmp_path):
    r = cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "l", *GPT)
    assert r.exit_code == 0, r.output
    assert "correctness baseline" in r.stderr and "--tune N" in r.stderr
    r = cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "o", *GPT)
    assert r.exit_code == 0 and "--tune" not in r.stderr


def test_verify_names_its_reference(monkeypatch):
    """Issue: verify labelled its reference "PyTorch eager" whatever it ran."""
    r = cli("verify", "gpt2", "--targets", "onnx", *GPT)
    assert r.exit_code == 0, r.output
    assert "reference: generated PyTorch module (eager)" in r.stdout.splitlines()[0]
    from graphspec.backends import torch as gtorch

    monkeypatch.setattr(gtorch, "codegen_available", lambda: False)  # run_eager interprets the IR
    r = cli("verify", "gpt2", "--targets", "onnx", *GPT, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["reference"] == "graphspec IR interpreter"
