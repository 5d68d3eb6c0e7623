"""The GPU check's two halves (benchmarks/gpu/), dry-run on this GPU-less machine.

- the device half's weights are graphspec's: run.random_params(recipe) == weights.random_params;
- run.py itself, in a fresh process with TVM_USE_RUNTIME_LIB=1, on a pack of an llvm build (the
  dry run, --device cpu): the pack's runtime-only tvm is the one imported (no libtvm_compiler.so
  in the pack, none loaded), TVM matches graphspec's generated PyTorch module to 1e-4 relative in
  fp32, and the timing table is written; a group that fails is reported without costing the
  others' figures, and a run stopped midway (device.sh's timeout) leaves what it measured;
- a cuda:sm_90 bf16 build of a small ViT has its kernels compiled for sm_90 (`.target sm_90`
  in the PTX; the cubin's ELF names sm_90 where cuobjdump exists) and packs far below 64 MiB;
- on a machine with a CUDA GPU the cuda build also runs and matches (skipped here).
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
import prepare  # noqa: E402
import run as device  # noqa: E402

pytest.importorskip("tvm")
VIT = ["img_size=32", "patch=8", "D=64", "L=1", "h=4", "classes=10"]


def test_device_weights_are_graphspecs():
    from graphspec.backends.weights import random_params

    import graphspec
    from graphspec.analysis import tensors

    g = graphspec.load("swin_t", ["img_size=32", "patch=2", "M=4", "C=48"]).graph
    recipe = [[n, list(s)] for n, s in tensors(g).items()]
    want, got = random_params(g, 3), device.random_params(recipe, 3)
    assert list(want) == list(got)
    assert all(np.array_equal(want[k], got[k]) for k in want)


@pytest.fixture(scope="module")
def llvm_pack(tmp_path_factory):
    import graphspec.cli.main  # noqa: F401  (first: importing build_cmd alone leaves the CLI half-registered)
    from graphspec.backends import build as b
    from graphspec.cli.build_cmd import _apply

    tmp = tmp_path_factory.mktemp("gpu_pack")
    out = tmp / "builds" / "vit-fp32"
    b.build("vit_b16", "llvm", out, overrides=tuple(VIT), batch="dynamic", apply_passes=lambda g, **o: _apply(g),
            pass_opts={})
    pack = tmp / "pack"
    prepare.model_files("vit_b16", "fp32", VIT, out, pack / "vit_b16-fp32")
    prepare.pack_tvm(pack)
    index = {"arch": None, "created": "test", "builds": {"vit_b16-fp32": {"spec": "vit_b16", "dtype": "fp32"}}}
    (pack / "index.json").write_text(json.dumps(index))
    return pack


def test_pack_has_runtime_only(llvm_pack):
    lib = llvm_pack / "tvm_runtime" / "tvm" / "lib"
    assert (lib / "libtvm_runtime.so").exists() and (lib / "libtvm_runtime_cuda.so").exists()
    assert not (lib / "libtvm_compiler.so").exists()
    assert prepare.size(llvm_pack) < 24 << 20  # the runtime is 16 MiB; the full pack's limit is 64


def test_device_half_dry_run_on_cpu(llvm_pack, tmp_path):
    """run.py end to end in a fresh process with TVM_USE_RUNTIME_LIB=1: the pack's runtime-only tvm
    (not the venv's), weights from the seed, TVM = the generated module (1e-4), the timing table."""
    env = {**os.environ, "TVM_USE_RUNTIME_LIB": "1", "OMP_NUM_THREADS": "1", "TVM_NUM_THREADS": "1"}
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "run.py"), "--pack", str(llvm_pack),
                        "--out", str(out), "--work", str(tmp_path / "work"), "--device", "cpu",
                        "--compile-dtypes", "", "--batches", "4,1", "--rounds", "2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    res = json.loads((out / "gpu.json").read_text())
    assert Path(res["env"]["tvm_file"]).is_relative_to(llvm_pack), res["env"]
    assert res["env"]["tvm_runtime_only"] is True
    tvm_check = next(c for c in res["checks"] if c["backend"] == "tvm")
    assert tvm_check["ok"] and tvm_check["rel_vs_fp32"] <= 1e-4, tvm_check
    got = {(row["backend"], row["batch"]) for row in res["rows"]}
    assert got == {("eager", 4), ("tvm", 4), ("eager", 1), ("tvm", 1)}, got
    md = (out / "gpu.md").read_text()
    assert "| vit_b16-fp32 | 4 | tvm |" in md and "| vit_b16 | fp32 | 1 | tvm |" in md and "images/s" in md


def _pack_with_second_group(llvm_pack, tmp_path, dtype: str, model_py: str) -> Path:
    """A copy of the llvm pack with a second group: the fp32 build relabelled `dtype`, its
    generated module replaced by `model_py`."""
    pack = tmp_path / "pack"
    shutil.copytree(llvm_pack, pack)
    key = f"vit_b16-{dtype}"
    shutil.copytree(pack / "vit_b16-fp32", pack / key)
    info = json.loads((pack / key / "build.json").read_text())
    (pack / key / "build.json").write_text(json.dumps({**info, "dtype": dtype}))
    (pack / key / "model.py").write_text(model_py)
    index = json.loads((pack / "index.json").read_text())
    index["builds"][key] = {"spec": "vit_b16", "dtype": dtype}
    (pack / "index.json").write_text(json.dumps(index))
    return pack


def _device_half(pack, tmp_path, **kw):
    env = {**os.environ, "TVM_USE_RUNTIME_LIB": "1", "OMP_NUM_THREADS": "1", "TVM_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu" / "run.py"), "--pack", str(pack), "--out",
           str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--device", "cpu", "--compile-dtypes", "",
           "--batches", "2,1", "--rounds", "1"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw)


def test_device_half_keeps_going_past_a_broken_group(llvm_pack, tmp_path):
    """A group that fails outright (its reference module raises; fp16 runs before fp32) is
    reported and the run exits 1, with the other group's checks and figures written."""
    pack = _pack_with_second_group(llvm_pack, tmp_path, "fp16", "raise ImportError('broken on purpose')\n")
    p = _device_half(pack, tmp_path)
    log = p.communicate(timeout=300)[0]
    assert p.returncode == 1, log[-3000:]
    res = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert any(n.startswith("vit_b16 fp16: failed: ImportError: broken on purpose") for n in res["notes"]), res["notes"]
    assert {(row["dtype"], row["backend"]) for row in res["rows"]} == {("fp32", "eager"), ("fp32", "tvm")}
    md = (tmp_path / "out" / "gpu.md").read_text()
    assert "| vit_b16-fp16 | 0 | (group) | nan | nan | FAILED |" in md and "incomplete" not in md


def test_device_half_stopped_midway_keeps_what_it_measured(llvm_pack, tmp_path):
    """device.sh's `timeout` stops run.py where it is: gpu.md is rewritten after every group, so
    the groups done before the stop are on disk, marked incomplete (an unknown dtype sorts last)."""
    import time

    pack = _pack_with_second_group(llvm_pack, tmp_path, "int8", "import time\ntime.sleep(600)\n")
    p = _device_half(pack, tmp_path)
    md, deadline = tmp_path / "out" / "gpu.md", time.monotonic() + 240
    try:
        while not md.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert md.exists(), "no gpu.md after the first group"
    finally:
        p.terminate()
        log = p.communicate(timeout=30)[0]
    assert p.returncode != 0, log[-3000:]
    text = md.read_text()
    assert "| vit_b16 | fp32 | 2 | tvm |" in text and "incomplete: the run stopped before vit_b16 int8" in text


@pytest.fixture(scope="module")
def cuda_pack(tmp_path_factory):
    if not shutil.which("nvcc"):
        pytest.skip("no nvcc: cuda builds need the CUDA toolkit")
    tmp = tmp_path_factory.mktemp("gpu_cuda")
    out = prepare.build_one("vit_b16", "bf16", "sm_90", VIT, tmp / "builds", force=True)
    pack = tmp / "pack"
    info = prepare.model_files("vit_b16", "bf16", VIT, out, pack / "vit_b16-bf16")
    return pack, out, info


def test_cuda_build_targets_sm_90(cuda_pack):
    pack, out, info = cuda_pack
    d = pack / "vit_b16-bf16"
    m = json.loads((out / "manifest.json").read_text())
    assert m["target"] == "cuda" and m["arch"] == "sm_90" and m["dtype"] == "bf16"
    assert m["tvm"]["dtype"] == "bfloat16" and m["tvm"]["cuda_kernels"] > 10
    assert m["tvm"]["bf16_tensor_cores"] is True  # the default (this tiny ViT has no matmul above 64)
    ptx = lzma.decompress((d / "model.ptx.xz").read_bytes())
    assert prepare_ptx_target(ptx) == "sm_90"
    assert b".target sm_80" not in ptx and b"bf16" in ptx  # bfloat16 arithmetic in the kernels
    cubin = (d / "model.cubin").read_bytes()
    assert cubin[:4] == b"\x7fELF"
    if shutil.which("cuobjdump"):
        listing = subprocess.run(["cuobjdump", "-lelf", str(d / "model.cubin")], capture_output=True, text=True)
        assert "sm_90" in listing.stdout + listing.stderr
    # the cubin is keyed by the sha256 of the CUDA source the library embeds (TVM compiles that
    # source at load through tvm_callback_cuda_compile; backends/cuda.py answers with the cubin)
    key = m["tvm"]["kernel_sources"][0]
    src = embedded_source((out / "model.so").read_bytes(), key)
    assert src is not None, "the library embeds no CUDA source with the cubin's key"
    import tvm_ffi
    from graphspec.backends.cuda import use_kernels

    use_kernels({key: cubin})
    assert bytes(tvm_ffi.get_global_func("tvm_callback_cuda_compile")(src.decode())) == cubin
    assert prepare.size(pack) < 8 << 20  # library compressed, no weights
    assert not list(pack.rglob("*.safetensors"))


def embedded_source(lib: bytes, key: str) -> bytes | None:
    """The CUDA source in a TVM library whose sha256 is `key` (a length-prefixed string there)."""
    import hashlib

    at = lib.find(b"#ifdef __CUDACC_RTC__")
    while at >= 0:
        for start in range(at - 8, at + 1):
            n = int.from_bytes(lib[start - 8:start], "little")
            if 0 < n <= len(lib) - start and hashlib.sha256(lib[start:start + n]).hexdigest() == key:
                return lib[start:start + n]
        at = lib.find(b"#ifdef __CUDACC_RTC__", at + 1)
    return None


def prepare_ptx_target(ptx: bytes):
    from graphspec.backends.cuda import ptx_target

    return ptx_target(ptx)


def test_cuda_build_runs_on_a_gpu(cuda_pack, tmp_path):
    torch = pytest.importorskip("torch")
    from graphspec.backends.tvm import has_cuda_device

    if not (torch.cuda.is_available() and has_cuda_device()):
        pytest.skip("no CUDA GPU here: the device half runs on the GPU machine (benchmarks/gpu/README.md)")
    pack, out, info = cuda_pack
    d = pack / "vit_b16-bf16"
    params = device.random_params(info["weights"], info["seed"])
    x = torch.randn(4, *info["inputs"][0]["shape"], device="cuda")
    ref = device.reference(d, info, params, torch.float32)
    got = device.TVMModel(d, info, params, tmp_path, torch.bfloat16)(x.to(torch.bfloat16)).float()
    with torch.no_grad():
        want = ref(x)
    assert float((got - want).abs().max() / want.abs().max()) <= device.TOL["bf16"]


def test_tune_cuda_without_gpu_is_exit_2(tmp_path):
    from click.testing import CliRunner
    from graphspec.backends.tvm import has_cuda_device
    from graphspec.cli.main import main as cli

    if not shutil.which("nvcc") or has_cuda_device():
        pytest.skip("needs nvcc and no GPU")
    sets = [a for s in VIT for a in ("--set", s)]
    r = CliRunner().invoke(cli, ["build", "vit_b16", *sets, "-t", "cuda:sm_90", "--tune", "8", "--batch", "1",
                                 "-o", str(tmp_path / "t")])
    assert r.exit_code == 2 and "tuning" in r.output.lower() and "GPU" in r.output, r.output
    assert not (tmp_path / "t").exists()
