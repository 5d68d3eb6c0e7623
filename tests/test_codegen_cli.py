"""`graphspec codegen`: writes the file atomically, honours --set and --passes, exit 2 on user errors."""

from __future__ import annotations

import ast

import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_writes_a_module(tmp_path):
    out = tmp_path / "sub" / "swin.py"
    r = run("codegen", "swin_t", "--passes", "none", "--set", "img_size=64", "--set", "M=4", "-o", str(out))
    assert r.exit_code == 0, r.output
    src = out.read_text()
    assert src == graphspec.load("swin_t", ["img_size=64", "M=4"]).codegen()
    assert "class SwinT(nn.Module):" in src
    assert not list(out.parent.glob(".*.tmp"))  # atomic: no temporary left behind


def test_stdout_and_default_passes():
    r = run("codegen", "vit_b16", "--set", "L=1")
    assert r.exit_code == 0
    ast.parse(r.output)
    try:
        import graphspec.passes  # noqa: F401
    except ImportError:
        pytest.skip("graphspec.passes not available")
    assert "self.qkv = nn.Linear(dim, 3 * dim)" in r.output  # fuse_qkv ran
    assert "F.scaled_dot_product_attention" in r.output  # fuse_attention ran


@pytest.mark.parametrize("args", [("nope.yaml",), ("swin_t", "--set", "M=5"), ("swin_t", "--set", "bogus=1")])
def test_user_errors_exit_2(args, tmp_path):
    r = CliRunner().invoke(main, ["codegen", *args, "-o", str(tmp_path / "x.py")])
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert not (tmp_path / "x.py").exists()


def test_unwritable_output_exits_2(tmp_path):
    (tmp_path / "file").write_text("")
    r = CliRunner().invoke(main, ["codegen", "swin_t", "--passes", "none", "-o", str(tmp_path / "file" / "x.py")])
    assert r.exit_code == 2
