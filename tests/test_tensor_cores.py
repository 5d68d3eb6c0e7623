"""bf16 matmuls on tensor cores (backends/tensor_cores.py), checked without a GPU.

What can be checked here: the schedule applies (TVM's `tensorize` has matched each bf16 wmma
intrinsic's description against the block it replaces), the matmuls DLight would leave on CUDA
cores (a static M, N or K of 64 or less) are left alone, and nvcc turns the kernels into bf16
tensor-core instructions accumulating in fp32 for sm_90 (`wmma.mma.sync ... .f32.bf16.bf16.f32`).
The bf16 kernel is also DLight's fp16 tensor-core kernel for the same matmul with the element
type renamed, token for token. That the numbers are right is checked on a GPU only:
benchmarks/gpu/run.py compares every bf16 build with the PyTorch module there.
"""

from __future__ import annotations

import re
import shutil

import pytest

pytest.importorskip("tvm")
needs_nvcc = pytest.mark.skipif(not shutil.which("nvcc"), reason="no nvcc: cuda builds need the CUDA toolkit")


def _module(shapes, dtype="bfloat16"):
    """main(x_i, w_i) = [dtype(matmul(x_i, w_i^T) in fp32) for each (M, K, N)]."""
    from tvm import relax

    bb = relax.BlockBuilder()
    args = [relax.Var(f"{c}{i}", relax.TensorType(s, dtype))  # M may be a tirx.Var (symbolic)
            for i, (m, k, n) in enumerate(shapes) for c, s in (("x", (m, k)), ("w", (n, k)))]
    with bb.function("main", args):
        with bb.dataflow():
            outs = []
            for i in range(len(shapes)):
                y = bb.emit(relax.op.matmul(args[2 * i], relax.op.permute_dims(args[2 * i + 1]), out_dtype="float32"))
                outs.append(bb.emit(relax.op.astype(y, dtype)))
            out = bb.emit_output(relax.Tuple(outs))
        bb.emit_func_output(out)
    return bb.get()


@needs_nvcc
def test_bf16_matmul_on_tensor_cores_for_sm_90():
    import tvm
    from graphspec.backends.cuda import compile_kernels
    from graphspec.backends.tensor_cores import schedule_bf16_matmuls
    from graphspec.backends.tvm import target
    from graphspec.backends.tvm_env import cuda_source

    tgt = target("cuda", "sm_90")
    # a linear layer (128 tokens, 96 -> 192) and a Swin window's scores (49 x 32 x 49)
    mod, n = schedule_bf16_matmuls(_module([(128, 96, 192), (49, 32, 49)]), tgt)
    assert n == 1
    ex = tvm.compile(mod, target=tgt)
    (ptx,) = [k["ptx"].decode() for k in compile_kernels(ex, "sm_90").values()]
    assert re.search(r"^\.target sm_90", ptx, re.M)
    entries = re.split(r"^\.visible \.entry ", ptx, flags=re.M)[1:]
    big = [e for e in entries if "wmma" in e]
    assert len(big) == 1, [e.split("(")[0] for e in entries]
    mma = set(re.findall(r"wmma\.mma\.sync\S*", big[0]))
    assert mma == {"wmma.mma.sync.aligned.row.col.m16n16k16.f32.bf16.bf16.f32"}, mma
    # the small matmul stays on CUDA cores, as DLight leaves fp16 ones of that size
    assert not any("wmma" in e or "mma.sync" in e for e in entries if e is not big[0])

    # and the kernel is DLight's own fp16 tensor-core kernel for that matmul, token for token,
    # with the element type changed: the schedule TVM's tests run on GPUs, not a new one
    def wmma_kernel(executable):
        (k,) = [k for k in re.split(r'(?=extern "C" __global__)', cuda_source(executable)) if "wmma" in k]
        return re.sub(r"nv_bfloat16|bfloat16|float16|half", "T", k)  # half4 and nv_bfloat164 too

    fp16 = tvm.compile(_module([(128, 96, 192)], "float16"), target=tgt)  # DLight's Matmul rule
    assert "nv_bfloat16" in cuda_source(ex) and "half" in cuda_source(fp16)
    assert wmma_kernel(ex) == wmma_kernel(fp16)


@needs_nvcc
def test_no_tensor_cores_keeps_dlights_loops(tmp_path):
    """`build(..., bf16_tensor_cores=False)` is DLight's CUDA-core schedule: no wmma at all."""
    import tvm
    from graphspec.backends.cuda import compile_kernels
    from graphspec.backends.tensor_cores import schedule_bf16_matmuls
    from graphspec.backends.tvm import target

    tgt = target("cuda", "sm_90")
    base = tvm.compile(_module([(128, 128, 128)]), target=tgt)
    (ptx,) = [k["ptx"].decode() for k in compile_kernels(base, "sm_90").values()]
    assert "wmma" not in ptx and "mma.sync" not in ptx
    # and an sm_75 target (Turing: no bf16 wmma) gets no tensor-core schedule either
    _, n = schedule_bf16_matmuls(_module([(128, 128, 128)]), target("cuda", "sm_75"))
    assert n == 0
    # nor a matmul of symbolic shape (`--batch dynamic`), on which the schedule fails in TVM 0.27:
    # the build goes on with DLight's loops
    from tvm import tirx

    mod, n = schedule_bf16_matmuls(_module([(tirx.Var("n", "int64"), 128, 128)]), tgt)
    assert n == 0
    tvm.compile(mod, target=tgt)


def test_tensor_cores_flag_outside_cuda_bf16_is_exit_2(tmp_path):
    from click.testing import CliRunner
    from graphspec.cli.main import main as cli

    for args in (["-t", "llvm", "--dtype", "bf16", "--no-tensor-cores"],
                 ["-t", "cuda:sm_90", "--dtype", "fp16", "--tensor-cores"]):
        r = CliRunner().invoke(cli, ["build", "vit_b16", *args, "-o", str(tmp_path / "b")])
        assert r.exit_code == 2, r.output
        assert "tensor-cores" in r.output and "cuda bf16" in r.output, r.output
    assert not any(tmp_path.iterdir())  # nothing written
