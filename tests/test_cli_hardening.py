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


# -- train -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_gpt(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from specs_small import TINY_GPT

    f = tmp_path_factory.mktemp("spec") / "tiny_gpt.yaml"
    f.write_text(TINY_GPT)
    return f


@pytest.mark.parametrize("args, needles", [
    (["--lr", "nan"], ["--lr nan", "positive number"]),  # was torch's 'Invalid learning rate' traceback
    (["--lr", "-1"], ["--lr -1.0"]),
    (["--peak-tflops", "0"], ["--peak-tflops 0.0", "positive number"]),  # was a ZeroDivisionError traceback
    (["--peak-tflops", "nan"], ["--peak-tflops nan"]),  # printed MFU nan%
    (["--ckpt-every", "-1"], ["--ckpt-every -1", "0 (no checkpoints) or a positive K"]),  # said 'need --ckpt-dir'
    (["--seed", str(10**20)], ["--seed 100000000000000000000", "at most 1,099,511,627,776"]),  # torch's Overflow
    (["--passes", "bogus"], ["--passes bogus: unknown pass 'bogus'"]),  # a PipelineError traceback
    (["--batch", str(10**12)], ["at --batch 1000000000000 would need about", "GRAPHSPEC_MEMORY_BUDGET"]),
])
def test_train_refuses_numbers_that_cannot_work(tiny_gpt, args, needles):
    # --batch 10**12 asked DefaultCPUAllocator for 64 TB of token ids and died in a RuntimeError
    refused(cli("train", tiny_gpt, "--steps", "1", "--batch", "2", *args), *needles)


@pytest.fixture(scope="module")
def checkpoint(tiny_gpt, tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck") / "ck"
    r = cli("train", tiny_gpt, "--steps", "2", "--batch", "2", "--ckpt-every", "1", "--ckpt-dir", ck)
    assert r.exit_code == 0, r.output
    return ck


def _edit_record(**fields):
    def edit(ck):
        import json

        rec = json.loads((ck / "graphspec.json").read_text())
        rec.update(fields)
        (ck / "graphspec.json").write_text(json.dumps(rec))
    return edit


def _truncate_shard(ck):
    (shard,) = (ck / "step-2").glob("*.distcp")
    shard.write_bytes(shard.read_bytes()[:100])


@pytest.mark.parametrize("damage, needles", [
    (lambda ck: (ck / "graphspec.json").write_text("[]"), ["graphspec.json: not a graphspec checkpoint record",
                                                          "a JSON list"]),
    (_edit_record(step="x"), ["step 'x' is not a step number"]),  # int('x') traceback
    (_edit_record(data=5), ["data 5 is not a data position"]),  # 'int' object is not subscriptable
    (_edit_record(step=10**9), ["names step 1000000000", "step-1000000000 is missing"]),  # DCP AssertionError
    (lambda ck: __import__("shutil").rmtree(ck / "step-2"), ["step-2 is missing"]),
    (_truncate_shard, ["cannot load", "step-2", "damaged or incomplete"]),  # EOFError traceback
    (lambda ck: (ck / "step-2" / ".metadata").write_bytes(b"garbage\n"), ["cannot load", "damaged or incomplete"]),
])
def test_resume_from_a_damaged_checkpoint_exits_2(tiny_gpt, checkpoint, tmp_path, damage, needles):
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(checkpoint, ck)
    damage(ck)
    r = cli("train", tiny_gpt, "--steps", "3", "--batch", "2", "--ckpt-every", "1", "--ckpt-dir", ck, "--resume")
    refused(r, *needles)


class _Touch:
    """Pickles to os.system('touch MARKER'): what a crafted checkpoint runs when it is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _crafted_metadata(ck, marker):
    import pickle

    (ck / "step-2" / ".metadata").write_bytes(pickle.dumps(_Touch(marker)))


def _crafted_value(ck, marker):
    """The optimizer's lr read from a shard whose bytes unpickle to os.system (metadata intact)."""
    import io
    import pickle

    import torch
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import MetadataIndex

    buf = io.BytesIO()
    torch.save(_Touch(marker), buf)
    (ck / "step-2" / "x.distcp").write_bytes(buf.getvalue())
    md = pickle.loads((ck / "step-2" / ".metadata").read_bytes())  # the file graphspec wrote
    md.storage_data[MetadataIndex("optim.param_groups.0.lr")] = _StorageInfo("x.distcp", 0, len(buf.getvalue()))
    (ck / "step-2" / ".metadata").write_bytes(pickle.dumps(md))


@pytest.mark.parametrize("craft, needles", [
    (_crafted_metadata, ["step-2/.metadata refers to posix.system, which a graphspec checkpoint never holds"]),
    (_crafted_value, ["step-2: the value of optim.param_groups.0.lr refers to posix.system, which a graphspec"]),
])
def test_resume_never_runs_code_a_checkpoint_holds(tiny_gpt, checkpoint, tmp_path, craft, needles):
    # DCP read .metadata with pickle.load and each non-tensor value with torch.load(weights_only=False):
    # both crafts ran `touch` (the control below) before graphspec/safe_dcp.py read them as data
    import pickle
    import shutil

    import torch

    ck = tmp_path / "ck"
    shutil.copytree(checkpoint, ck)
    craft(ck, tmp_path / "ran")
    r = cli("train", tiny_gpt, "--steps", "3", "--batch", "2", "--ckpt-every", "1", "--ckpt-dir", ck, "--resume")
    refused(r, *needles, "not loaded", "resume only from checkpoints you wrote")
    assert not (tmp_path / "ran").exists()
    if craft is _crafted_metadata:  # control: the same bytes run the command when unpickled as DCP did
        pickle.loads((ck / "step-2" / ".metadata").read_bytes())
    else:
        torch.load(ck / "step-2" / "x.distcp", weights_only=False)
    assert (tmp_path / "ran").exists()


def test_a_checkpoint_that_cannot_be_written_leaves_the_last_complete_one(tiny_gpt, tmp_path, monkeypatch):
    # found on a 64 KiB tmpfs: dcp.save's RuntimeError ('unexpected pos 704 vs 598') was a traceback
    # and a half-written step-1/ stayed behind
    import errno
    import json

    import torch.distributed.checkpoint as dcp

    ck = tmp_path / "ck"
    save = dcp.save

    def full_after_one(state, checkpoint_id):
        if checkpoint_id.endswith("step-1"):
            return save(state, checkpoint_id=checkpoint_id)
        (ck / "step-2").mkdir()
        (ck / "step-2" / "__0_0.distcp").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dcp, "save", full_after_one)
    r = cli("train", tiny_gpt, "--steps", "3", "--batch", "2", "--ckpt-every", "1", "--ckpt-dir", ck)
    refused(r, "cannot save the checkpoint", "step-2: No space left on device", "still names step 1")
    assert sorted(p.name for p in ck.iterdir()) == ["graphspec.json", "step-1"]
    assert json.loads((ck / "graphspec.json").read_text())["step"] == 1


# -- export --weights / import-weights ---------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_weights(tmp_path_factory):
    """graphspec-named weights of the tiny GPT-2 (init_params) and their HF export."""
    from safetensors.torch import save_file

    import graphspec
    from graphspec.interpret import init_params

    d = tmp_path_factory.mktemp("w")
    m = graphspec.load("gpt2", [a for a in GPT if a != "--set"])
    state = {k: v.contiguous() for k, v in init_params(m.graph, seed=0).items()}
    save_file(state, str(d / "w.safetensors"))
    r = cli("export", "gpt2", "--format", "hf", "-o", d / "hf", "--weights", d / "w.safetensors", *GPT)
    assert r.exit_code == 0, r.output
    return d, state


def _safetensors_claiming(path, shape, size=None):
    """A safetensors header listing one float32 tensor of `shape`; the file is `size` bytes
    (sparse: nothing is written past the header), or just the header."""
    import json
    import math

    h = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * math.prod(shape)]}}).encode()
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        if size:
            f.truncate(size)


@pytest.mark.parametrize("shape, size, needles", [
    # a 200-byte file claiming 4 TB: "lists 4,000,000,000,000 bytes of tensors, the file holds 112"
    ([10**6, 10**6], 200, ["lists 4,000,000,000,000 bytes of tensors, the file holds", "truncated or damaged"]),
    # a 1 GiB (sparse) file of tensors: read whole before (a 1 GiB bytes object), for a 5,000-parameter model
    ([1 << 28], (1 << 30) + 200, ["list 1.0 GiB of tensors, and gpt2 has", "another model's weights"]),
])
def test_weights_are_sized_from_their_header_before_they_are_read(gpt2_weights, tmp_path, shape, size, needles):
    import tracemalloc

    _safetensors_claiming(tmp_path / "big.safetensors", shape, size)
    for cmd in (["export", "gpt2", "--format", "hf", "-o", tmp_path / "hf", "--weights", tmp_path / "big.safetensors"],
                ["import-weights", "gpt2", tmp_path / "big.safetensors", "-o", tmp_path / "w.safetensors"]):
        tracemalloc.start()
        r = cli(*cmd, *GPT)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        refused(r, "weights", "big.safetensors", *needles)
        assert peak < 64 << 20, peak


def test_weights_that_do_not_fit_in_free_memory_are_not_read(gpt2_weights, tmp_path, monkeypatch):
    from graphspec.backends import budget

    d, _ = gpt2_weights
    monkeypatch.setattr(budget, "free_bytes", lambda: 10 << 10)
    # the tiny GPT-2: 1,600 wte + 256 wpe + 3,280 in the block + 32 ln_f = 5,168 float32 parameters,
    # 20,672 bytes (20.2 KiB); read and renamed (2 copies) and the file's bytes: 3 x 20,672 = 62,016 (60.6 KiB)
    need = "needs about 60.6 KiB (20.2 KiB of tensors, read and renamed, and the largest file's bytes"
    refused(cli("export", "gpt2", "--format", "hf", "-o", tmp_path / "hf", "--weights", d / "w.safetensors", *GPT),
            "weights " + str(d / "w.safetensors"), need, "this machine has 10.0 KiB free", "free memory")
    refused(cli("import-weights", "gpt2", d / "hf", "-o", tmp_path / "w.safetensors", *GPT),
            str(d / "hf" / "model.safetensors"), "this machine has 10.0 KiB free")
    assert not (tmp_path / "hf").exists() and not (tmp_path / "w.safetensors").exists()


@pytest.mark.parametrize("change, needles", [
    (lambda t: t.new_zeros(*(s + 1 for s in t.shape)), ["shape (101, 17)", "wants (100, 16)"]),  # was a torch
    # split_with_sizes RuntimeError traceback (the fused qkv split by the config's width)
    (lambda t: t.to(torch_dtype("int32")), ["dtype int32, not floating point"]),  # was exported as int32
    (lambda t: t.to(torch_dtype("bool")), ["dtype bool, not floating point"]),
])
def test_export_weights_of_another_shape_or_dtype_exit_2(gpt2_weights, tmp_path, change, needles):
    from safetensors.torch import save_file

    _, state = gpt2_weights
    save_file({k: change(v).contiguous() for k, v in state.items()}, str(tmp_path / "bad.safetensors"))
    r = cli("export", "gpt2", "--format", "hf", "-o", tmp_path / "hf", "--weights", tmp_path / "bad.safetensors", *GPT)
    refused(r, "weight embed.tokens.weight:", *needles)
    assert not (tmp_path / "hf").exists()


def test_import_weights_refuses_integer_parameters(gpt2_weights, tmp_path):
    from safetensors.torch import load_file, save_file

    d, state = gpt2_weights
    hf = load_file(str(d / "hf" / "model.safetensors"))
    save_file({k: v.to(torch_dtype("int8")) for k, v in hf.items()}, str(tmp_path / "q.safetensors"))
    r = cli("import-weights", "gpt2", tmp_path / "q.safetensors", "-o", tmp_path / "w.safetensors", *GPT)
    refused(r, "dtype int8, not floating point")  # was written as int8 'weights' without a word
    assert not (tmp_path / "w.safetensors").exists()
    r = cli("import-weights", "gpt2", d / "hf", "-o", tmp_path / "w.safetensors", *GPT)  # the intact ones
    assert r.exit_code == 0, r.output
    back = load_file(str(tmp_path / "w.safetensors"))
    assert set(back) == set(state) and all(np.array_equal(back[k].numpy(), state[k].numpy()) for k in state)


def torch_dtype(name):
    import torch

    return getattr(torch, name)


# -- outputs that would destroy an input or a home ---------------------------------------------
TINY = """\
name: tiny
vars: vocab=50, d=16, L=1, h=2, n_ctx=16, seq_len=8, batch=1
input: tokens(seq_len)
embed: tokens(vocab, dim=d, pos=learned(n_ctx))
decoder×L: {dim: d, heads: h, d_ff: 2*d, norm: pre, act: gelu}
head: lm(tied=true)
"""


def test_codegen_over_its_own_spec_is_refused(tmp_path, monkeypatch):
    # 'graphspec codegen s.yaml -o s.yaml' replaced the spec with the generated Python
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(TINY)
    refused(cli("codegen", "s.yaml", "-o", "./s.yaml"), "-o ./s.yaml is the spec itself", "s.py")
    assert (tmp_path / "s.yaml").read_text() == TINY


def test_force_never_replaces_the_specs_folder_or_a_home(tmp_path, monkeypatch):
    # with --force, 'build d/s.yaml -o d' deleted d and the spec in it, and '-o $HOME' the home directory
    d = tmp_path / "d"
    d.mkdir()
    (d / "s.yaml").write_text(TINY)
    (d / "notes.txt").write_text("mine")
    refused(cli("build", d / "s.yaml", "-t", "torch", "-o", d, "--force"), f"it holds the spec {d / 's.yaml'}",
            "not even with --force")
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for out in (home, tmp_path):
        refused(cli("build", d / "s.yaml", "-t", "torch", "-o", out, "--force"), "a home directory or one of its parents")
    refused(cli("build", d / "s.yaml", "-t", "torch", "-o", "/usr", "--force"), "top-level directory")
    from graphspec.io import target_dir  # a new top-level folder (a container's /out) is a fine -o

    assert str(target_dir("/graphspec-test-no-such-folder")) == "/graphspec-test-no-such-folder"
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt", "s.yaml"] and (home / "docs").is_dir()


def test_force_never_replaces_the_weights_being_exported(gpt2_weights, tmp_path):
    import shutil

    d, _ = gpt2_weights
    shutil.copy(d / "w.safetensors", tmp_path / "w.safetensors")
    r = cli("export", "gpt2", "--format", "hf", "-o", tmp_path, "--weights", tmp_path / "w.safetensors", "--force",
            *GPT)
    refused(r, "it holds --weights", "not even with --force")
    assert (tmp_path / "w.safetensors").is_file()


def test_a_tune_dir_inside_the_output_is_refused(tmp_path):
    # the rebuild replaces the output directory: a database kept inside it by --tune-dir was lost with it
    out = tmp_path / "b"
    r = cli("build", "gpt2", "-t", "llvm", "--tune", "1", "-o", out, "--tune-dir", out / "tuning", *GPT)
    refused(r, "--tune-dir", "is inside -o", "carried over")
    assert not out.exists()


# -- plot --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes, needle", [
    ("1:1000000000:1", "1,000,000,000 points; at most 10,000"),  # built a billion-int tuple first (OOM-killed)
    ("1:99999999999999999999999999", "at most 18 digits"),  # OverflowError from len(range)
    ("²", "at most 18 digits"),  # str.isdigit() let '²' through to int()
    ("9" * 5000, "'9999999999999999999999999999999999999999...'"),  # int()'s 4300-digit error, 5000 digits echoed
])
def test_plot_sizes_are_bounded_before_they_are_made(tmp_path, sizes, needle):
    r = cli("plot", "macs", "vit_b16", "--sizes", sizes, "-o", tmp_path / "m.svg")
    refused(r, "--sizes", needle)
    assert len(r.stderr) < 300 and not (tmp_path / "m.svg").exists()


# -- flops / inspect ---------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["flops", "inspect"])
def test_a_huge_depth_is_the_full_depth(cmd):
    # the module summary looped `for d in range(1, depth + 1)` for every op: --depth 99999999999 ran
    # past 2 minutes; now it stops at each op's own depth, and the table is that of --depth 9
    import signal

    def too_slow(*_):
        raise TimeoutError("--depth 10**11 took over 20 s")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        deep = cli(cmd, "gpt2", *GPT, "--depth", str(10**11))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert deep.exit_code == 0, deep.output
    assert deep.output == cli(cmd, "gpt2", *GPT, "--depth", "9").output and "blocks.0" in deep.output


def test_a_pass_argument_given_twice_is_refused():
    # partition_windows(M=7,M=8) ran with M=8 without a word
    refused(cli("flops", "swin_t", "--passes", "partition_windows(M=7,M=8)"), "partition_windows is given M twice")


@pytest.mark.parametrize("tol", ["nan", "-1", "inf"])
def test_verify_tolerance_must_be_a_finite_non_negative_number(tol):
    # --tol nan reported every backend a MISMATCH (exit 1), --tol -1 too, --tol inf accepted anything
    refused(cli("verify", "gpt2", "--targets", "torch", *GPT, "--tol", tol), "--tol", "finite tolerance >= 0")


def test_import_and_import_weights_never_write_over_their_input(gpt2_weights, tmp_path):
    # with --force, 'import c.json -o c.json' replaced the config with the spec and 'import-weights
    # gpt2 m.safetensors -o m.safetensors' the Hugging Face weights with graphspec's
    import shutil

    d, _ = gpt2_weights
    shutil.copy(d / "hf" / "config.json", tmp_path / "c.json")
    shutil.copy(d / "hf" / "model.safetensors", tmp_path / "m.safetensors")
    before = (tmp_path / "c.json").read_bytes(), (tmp_path / "m.safetensors").read_bytes()
    refused(cli("import", tmp_path / "c.json", "-o", tmp_path / "c.json", "--force"), "is the config itself")
    refused(cli("import-weights", "gpt2", tmp_path / "m.safetensors", "-o", tmp_path / "m.safetensors", "--force",
                *GPT), "is WEIGHTS itself")
    assert ((tmp_path / "c.json").read_bytes(), (tmp_path / "m.safetensors").read_bytes()) == before


@pytest.mark.parametrize("make, needle", [
    (lambda d: (d / "model.safetensors.index.json").write_text('{"weight_map":' + "[" * 100000 + "]" * 100000 + "}"),
     "not a safetensors index"),  # a RecursionError traceback (json's, not a ValueError)
    (lambda d: ((d / "sub").mkdir(), (d / "model.safetensors.index.json").write_text('{"weight_map": {"a": "sub"}}')),
     "sub: not a regular file"),  # a shard that is a directory: IsADirectoryError traceback from os.fdopen
    (lambda d: ((d / "sub").symlink_to("."), (d / "model.safetensors.index.json").write_text('{"weight_map": {"a": "sub"}}')),
     "sub: not a regular file"),  # a shard linking back to its directory: read the same index again
    (lambda d: (d / "model.safetensors.index.json").write_text(" " * (17 << 20) + "{}"),
     "not a regular file of at most 16,777,216 bytes"),  # an index was read up to the 64 GiB weights limit
])
def test_import_weights_reads_a_sharded_index_as_data(tmp_path, make, needle):
    d = tmp_path / "hf"
    d.mkdir()
    make(d)
    refused(cli("import-weights", "gpt2", d, "-o", tmp_path / "w.safetensors", *GPT), needle)
    assert not (tmp_path / "w.safetensors").exists()


def test_a_build_directory_holding_other_files_is_not_rebuilt_over_them(tmp_path):
    # 'build -o b/inner' (or a file the user saved in b) was deleted by the next rebuild of b
    b = tmp_path / "b"
    assert cli("build", "gpt2", "-t", "onnx", "-o", b, *GPT).exit_code == 0
    assert cli("build", "gpt2", "-t", "onnx", "-o", b / "inner", *GPT).exit_code == 0
    (b / "notes.txt").write_text("mine")
    refused(cli("build", "gpt2", "-t", "onnx", "-o", b, *GPT, "--seed", "1"), "it also holds inner, notes.txt",
            "--force")
    assert (b / "notes.txt").read_text() == "mine" and (b / "inner" / "model.onnx").is_file()
    assert cli("build", "gpt2", "-t", "onnx", "-o", b, *GPT).exit_code == 0  # a cache hit replaces nothing
    assert (b / "notes.txt").exists()
    r = cli("build", "gpt2", "-t", "onnx", "-o", b, *GPT, "--seed", "1", "--force")
    assert r.exit_code == 0 and sorted(p.name for p in b.iterdir()) == ["manifest.json", "model.onnx"]


# -- import: the messages of bad integers (graphspec/interchange/config.py) ----------------------
def _gpt2_config(tmp_path, **fields):
    import json

    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50, "n_embd": 16,
           "n_layer": 1, "n_head": 2, "n_positions": 16, **fields}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path / "config.json"


def test_import_names_a_bad_integer_once(tmp_path):
    """n_positions is read twice (context and position table): it printed its error twice."""
    r = cli("import", _gpt2_config(tmp_path, n_positions=-1))
    refused(r, "n_positions must be an integer from 1 to 2**31 - 1, not -1")
    assert r.stderr.count("n_positions must be") == 1


def test_import_names_the_upper_bound_of_a_huge_integer(tmp_path):
    """vocab_size 2**62 was refused as 'must be an integer >= 1, not 4611686018427387904'."""
    r = cli("import", _gpt2_config(tmp_path, vocab_size=2**62))
    refused(r, "vocab_size must be an integer from 1 to 2**31 - 1, not 4611686018427387904")


def test_import_of_a_5000_digit_integer_gives_a_user_fix(tmp_path):
    """It got Python's 'use sys.set_int_max_str_digits() to increase the limit' as its message."""
    f = _gpt2_config(tmp_path)
    f.write_text(f.read_text().replace('"n_embd": 16', '"n_embd": ' + "9" * 5000))
    r = cli("import", f)
    refused(r, "an integer of 5,000 digits (a config's numbers have at most 100)")
    assert "set_int_max_str_digits" not in r.stderr


@pytest.mark.parametrize("char, name", [("\n", "a newline (U+000A)"), ("\r", "a carriage return (U+000D)"),
                                        ("\0", "a NUL (U+0000)"), ("\x1b", "an escape (U+001B)"),
                                        ("\x85", "a control character (U+0085)"), ("\u2028", "a line separator (U+2028)")])
def test_output_names_with_control_characters_are_refused(onnx_build, tiny_gpt, tmp_path, char, name):
    # each was accepted: `codegen -o $'x\ny.py'` wrote a file whose name breaks `ls`, logs and the
    # manifest's lines; a NUL reached os.open as "embedded null byte" (ValueError traceback)
    bad = tmp_path / f"out{char}put"
    for cmd, option in [(["codegen", "gpt2", "-o", bad], "'-o' / '--output'"),
                        (["build", "gpt2", "-t", "onnx", "-o", bad, *GPT], "'-o' / '--output'"),
                        (["build", "gpt2", "-t", "onnx", "--tune-dir", bad, *GPT], "'--tune-dir'"),
                        (["run", onnx_build, "-o", bad], "'-o' / '--output'"),
                        (["export", "gpt2", "--format", "hf", "-o", bad], "'-o' / '--output'"),
                        (["import", tmp_path / "config.json", "-o", bad], "'-o' / '--output'"),
                        (["import-weights", "gpt2", tmp_path / "w.safetensors", "-o", bad], "'-o' / '--output'"),
                        (["plot", "breakdown", "gpt2", "-o", bad], "'-o' / '--output'"),
                        (["train", tiny_gpt, "--steps", "1", "--ckpt-dir", bad], "'--ckpt-dir'")]:
        r = cli(*cmd)
        refused(r, f"Invalid value for {option}", f"the name holds {name}", "give a name of printable characters")
        assert str(bad) not in r.stderr and not list(tmp_path.glob("out*"))  # the name is printed escaped


def test_the_python_api_refuses_control_characters_too(tmp_path):
    from graphspec.io import OutputError, atomic_dir, atomic_write
    from graphspec.train import TrainConfig, TrainError, check

    with pytest.raises(OutputError, match=r"the name holds a newline \(U\+000A\)"):
        atomic_write(tmp_path / "a\nb.py", "x")
    with pytest.raises(OutputError, match="a NUL"), atomic_dir(tmp_path / "a\0b"):
        pass
    with pytest.raises(TrainError, match=r"^--ckpt-dir 'c\\rk': the name holds a carriage return"):
        check(TrainConfig(ckpt_dir="c\rk"), 1)
    assert list(tmp_path.iterdir()) == []
