"""Apache TVM (Relax) backend: the IR lowered straight to Relax with a BlockBuilder.

Each op class in graphspec/ops has a facet

    def relax(e, x, *, eps=1e-5, **_):                 # e: an `Emitter`; x: a relax.Var
        return e("nn.layer_norm", x, e.param("weight"), e.param("bias"), axes=[-1], epsilon=eps)

where `e("nn.layer_norm", ...)` emits `tvm.relax.op.nn.layer_norm(...)` into the current
dataflow block. `lower` walks the IR and builds

    @R.function
    def main(image: R.Tensor((B, 3, 224, 224)), <params in IR order>) -> R.Tensor((B, 1000)):
        R.func_attr({"num_input": 1})

Parameters are function parameters named after the IR (`layers.0.blocks.0.attn.qkv.weight`)
and are bound at run time from a name -> array dict. `LiftTransformParams` moves the work on
weights alone (the transposes that `linear` legalizes to) into `main_transform_params`, which
`Runner` calls once. Fused attention becomes `relax.op.nn.attention` on (B, N, h, d); Swin's
windows are reshape/permute, the cyclic shift a `take` with a constant permutation.

Targets: `llvm` (runs here) and `cuda` (builds on a machine with nvcc and no GPU; DLight's
default GPU schedules are applied by the cuda pipeline of `tvm.compile`). Tuning with
MetaSchedule is in backends/metaschedule.py; `build(..., database=db)` applies its records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from graphspec.backends.tvm_env import (  # noqa: F401  (re-exported: callers import them from here)
    ToolchainError,
    check_cuda_toolchain,
    cpu_threads,
    cuda_kernels,
    cuda_source,
    cuda_source_modules,
    has_cuda_device,
    llvm_cpu,
    target,
    use_cpu_threads,
)
from graphspec.backends.tvm_schedule import (  # noqa: F401
    ROW_MULTIPLE,
    awkward_rows,
    pad_rows,
    prepare,
    schedulable,
)

from graphspec.analysis import tensors
from graphspec.ir import Graph, Node
from graphspec.ops import get

DTYPES = {"f32": "float32", "i64": "int64"}
# NOTE: [Half precision] With dtype float16 or bfloat16, weights, inputs and activations are
# in that type, and where PyTorch computes in float32 inside a half-precision op (its
# `opmath` type: the statistics of layer_norm/rms_norm, softmax, GELU/SiLU/tanh, reductions,
# the accumulators of matmul and conv, as cuBLAS does) the Relax ops below do too: their
# operands are cast up, the op runs in float32 and its result is cast back (`FP32_OPS`;
# matmul/linear/conv2d get out_dtype=float32). Fused attention is lowered as matmuls then.
FP32_OPS = frozenset({"nn.layer_norm", "nn.rms_norm", "nn.group_norm", "nn.batch_norm", "nn.softmax",
                      "nn.gelu", "nn.gelu_tanh", "nn.silu", "sigmoid", "tanh", "rsqrt", "exp", "sqrt",
                      "mean", "sum", "image.resize2d"})
ACCUMULATE_FP32 = frozenset({"matmul", "linear", "nn.conv2d"})


class LowerError(ValueError):
    """The IR uses something the Relax lowering cannot express."""



class Emitter:
    """What an op's `relax` facet sees: op emission, constants, parameters and shapes."""

    def __init__(self, graph: Graph, params: Mapping[str, tuple], dynamic_batch: bool,
                 decompose_attention: bool = False, dtype: str = "float32"):
        from tvm import relax, tirx

        self.relax = relax
        self.dtype = dtype  # of weights and activations (see [Half precision])
        self.graph = graph
        self.param_shapes = params
        self.dynamic_batch = dynamic_batch
        # fused attention as relax.op.nn.attention (default), or as matmul/softmax/matmul
        self.decompose_attention = decompose_attention
        self.batch_var = tirx.Var("B", "int64") if dynamic_batch else None
        self.bb = relax.BlockBuilder() if dtype == "float32" else _HalfBuilder(relax.BlockBuilder(), self)
        self.inputs: list[Any] = []
        self.params: dict[str, Any] = {}
        self.shapes: dict[Any, tuple] = {}
        self._cache: dict[tuple, Any] = {}
        self.node: Node | None = None

    def __call__(self, op: str, *args: Any, **attrs: Any):
        """Emit `tvm.relax.op.<op>(*args, **attrs)`; returns the bound relax.Var."""
        fn: Any = self.relax.op
        for part in op.split("."):
            fn = getattr(fn, part)
        if self.dtype != "float32" and op in ACCUMULATE_FP32:
            if op == "linear" and len(args) > 2 and args[2] is not None:  # bias added to the fp32 sum
                args = (args[0], args[1], self.up(args[2]), *args[3:])
            return self.down(self.bb.emit(fn(*args, **{**attrs, "out_dtype": "float32"})))
        if self.dtype != "float32" and op in FP32_OPS:
            return self.down(self.bb.emit(fn(*(self.up(a) for a in args), **attrs)))
        return self.bb.emit(fn(*args, **attrs))

    def _retype(self, x: Any, src: str, dst: str):
        ty = getattr(x, "ty", None) if isinstance(x, self.relax.Expr) else None
        if getattr(ty, "dtype", None) != src:
            return x
        return self.bb.emit(self.relax.op.astype(x, dst))

    def up(self, x: Any):
        """`x` in float32 when it is a tensor of the half type (else as it is)."""
        return self._retype(x, self.dtype, "float32")

    def down(self, x: Any):
        """`x` back in the half type when it is a float32 tensor."""
        return self._retype(x, "float32", self.dtype)

    def item(self, tup: Any, index: int):
        return self.bb.emit(self.relax.TupleGetItem(tup, index))

    def const(self, value: Any):
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            arr = arr.astype(np_dtype(self.dtype))
        return self.relax.const(arr)

    def scalar(self, value: float, dtype: str = "f32"):
        return self.relax.const(value, self.dtype if dtype == "f32" else DTYPES[dtype])

    def param(self, key: str = ""):
        """The function parameter holding the current node's parameter `key`."""
        n = self.node
        owner = n.a.get("weights") or n.name
        name = f"{owner}.{key}" if key else owner
        if name not in self.params:
            shape = self.param_shapes[name]
            self.params[name] = self.relax.Var(name, self.relax.TensorType(shape, self.dtype))
        return self.params[name]

    def input(self):
        n = self.node
        shape = list(n.shape)
        if self.dynamic_batch:
            shape[0] = self.batch_var
        v = self.relax.Var(n.name, self.relax.TensorType(shape, self.dtype if n.dtype == "f32" else DTYPES[n.dtype]))
        self.inputs.append(v)
        return v

    def cached(self, key: tuple, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def softmax(self, x: Any, axis: int = -1):
        """softmax(x) along `axis` as one kernel, with TOPI's fast_exp (a polynomial,
        float32-accurate) for exp.

        NB: relax.op.nn.softmax lowers exp to a scalar libm expf call per element, which LLVM
        cannot vectorize: tuned, ViT-B/16's softmax over (12, 197, 197) took 0.8-0.9 ms a call
        (2 GFLOP/s, 7 % of the model). Spelled as Relax ops (max, subtract, exp, sum, divide)
        it became four kernels and was slower still. fast_exp(-inf), and of anything below
        -88.4, is an exact 0: masked scores stay 0."""
        return self.bb.emit_te(_softmax_te, x, axis)


    def shape(self, x: Any) -> tuple:
        """The IR shape of `x` (an operand of the current node)."""
        return self.shapes[x]

    def dims(self, x: Any) -> list:
        """The Relax shape of `x`: ints or PrimExprs (the batch var under dynamic batch)."""
        return list(x.ty.shape.values)

class _HalfBuilder:
    """A BlockBuilder whose `emit_te` runs TE functions (TOPI's fast_erf, the softmax above) in
    float32 on half-precision operands and casts the result back ([Half precision]); every
    other call goes to the BlockBuilder."""

    def __init__(self, bb: Any, e: Emitter):
        self._bb, self._e = bb, e

    def __getattr__(self, name: str):
        return getattr(self._bb, name)

    def emit_te(self, fn: Callable, *args: Any, **kwargs: Any):
        return self._e.down(self._bb.emit_te(fn, *(self._e.up(a) for a in args), **kwargs))


NP_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def np_dtype(dtype: str):
    """The numpy dtype of a TVM float dtype (bfloat16 through ml_dtypes, which TVM requires)."""
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(NP_DTYPES[dtype])


def _softmax_te(x: Any, axis: int):
    """The TE of `Emitter.softmax`: max, fast_exp(x - max), sum, divide in one PrimFunc."""
    from tvm import te, topi

    ax = axis % len(x.shape)
    n = x.shape[ax]

    def row(i, k):  # the index of x at reduction position k for output index i
        return (*i[:ax], k, *i[ax:])

    k = te.reduce_axis((0, n), name="k")
    top = te.compute((*x.shape[:ax], *x.shape[ax + 1:]), lambda *i: te.max(x[row(i, k)], axis=k), name="softmax_max")
    ex = topi.fast_exp(te.compute(x.shape, lambda *i: x[i] - top[(*i[:ax], *i[ax + 1:])], name="softmax_shift"))
    k2 = te.reduce_axis((0, n), name="k2")
    total = te.compute(top.shape, lambda *i: te.sum(ex[row(i, k2)], axis=k2), name="softmax_sum")
    return te.compute(x.shape, lambda *i: ex[i] / total[(*i[:ax], *i[ax + 1:])], name="softmax_norm")


@dataclass
class Lowered:
    """A Relax module with `main(inputs..., params...)` and the names of both."""

    mod: Any
    inputs: list[str]
    params: list[str]
    outputs: list[str]
    dynamic_batch: bool = False
    attention: str = "op"  # how fused attention was lowered: "op" (nn.attention) or "matmul"
    dtype: str = "float32"  # of weights, inputs and activations ([Half precision])

    def script(self) -> str:
        return self.mod.script()


def lower(graph: Graph, *, dynamic_batch: bool = False, attention: str = "op",
          dtype: str = "float32") -> Lowered:
    """The IR as a Relax IRModule (weights as function parameters).

    `attention="op"` lowers the fused `attention` op to relax.op.nn.attention; "matmul" spells
    it out (QKᵀ, scale, bias, softmax, ·V) for MetaSchedule, which cannot build candidate
    schedules of nn.attention's TIR in TVM 0.27 ("Buffer T_reshape_global is used before its
    definition"), so that tuned llvm builds tune the attention matmuls too.

    `dtype` (float32, float16, bfloat16) is the type of the weights, inputs and activations
    (see [Half precision]); half-precision attention is always lowered as matmuls, whose
    accumulators are float32 (nn.attention's TOPI compute would sum QKᵀ in the half type)."""
    if attention not in ("op", "matmul"):
        raise ValueError(f"attention lowering {attention!r}: use 'op' or 'matmul'")
    if dtype not in NP_DTYPES:
        raise ValueError(f"dtype {dtype!r}: use one of {', '.join(NP_DTYPES)}")
    if dtype != "float32":
        attention = "matmul"
    from tvm import relax

    missing = sorted({n.op for n in graph if get(n.op).relax is None})
    if missing:
        raise LowerError(f"no Relax emitter for op kind(s) {', '.join(missing)}; "
                         "add a `relax` facet beside the op's rules in graphspec/ops")
    e = Emitter(graph, tensors(graph), dynamic_batch, decompose_attention=attention == "matmul", dtype=dtype)
    env: dict[str, Any] = {}

    # The signature is known only after the body (parameters appear as ops ask for them), so
    # the function is opened without params and they are given to emit_func_output.
    with e.bb.function("main", attrs={"num_input": 0}):
        with e.bb.dataflow():
            for n in graph:
                e.node = n
                try:
                    out = get(n.op).relax(e, *(env[i] for i in n.inputs), **n.a)
                except Exception as err:
                    raise LowerError(f"%{n.name} ({n.op}, {n.loc or 'no location'}): {err}") from err
                env[n.name] = out
                e.shapes[out] = n.shape
            e.node = None
            outs = [env[o] for o in graph.outputs]
            out = e.bb.emit_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
        inputs, params = list(e.inputs), list(e.params.values())
        e.bb.emit_func_output(out, params=[*inputs, *params])
    mod = e.bb.get()
    main = mod["main"].with_attr("num_input", len(inputs))
    mod["main"] = main
    return Lowered(mod, [str(v.name) for v in inputs], list(e.params),
                   list(graph.outputs), dynamic_batch, attention, dtype)


# -- building (targets and toolchains: backends/tvm_env.py; what is tuned: backends/tvm_schedule.py)
def build(lowered: Lowered, kind: str = "llvm", *, database: Any = None,
          arch: str | None = None, bf16_tensor_cores: bool = True) -> tuple[Any, dict]:
    """Compile for `kind` -> (executable, info). With a MetaSchedule `database` the tuned
    schedules are applied and the weights they read in a blocked layout are prepacked by
    `main_transform_params`; info["tuned_funcs"] counts the PrimFuncs that got a schedule, so
    that a database that silently matches nothing shows up, info["prepacked_weights"] the
    weights whose layout a schedule rewrote, info["padded_matmuls"] the matmuls `pad_rows`
    padded. info["threads"]: the CPU threads its kernels will run on (`cpu_threads`).
    An untuned bf16 cuda build puts its large matmuls on tensor cores (backends/tensor_cores.py;
    `bf16_tensor_cores=False`: DLight's CUDA-core loops); info["bf16_tensor_core_matmuls"]
    counts those kernels."""
    import tvm
    from graphspec.backends.cuda import cuda_arch
    from tvm import relax, tirx

    arch = cuda_arch(arch) if kind == "cuda" else None
    tgt = target(kind, arch)
    info: dict[str, Any] = {"target": str(tgt.kind.name), "arch": arch, "dtype": lowered.dtype,
                            "mcpu": str(tgt.attrs.get("mcpu", "")) if kind == "llvm" else None,
                            "threads": cpu_threads() if kind == "llvm" else None}
    if database is None and kind == "cuda" and lowered.dtype == "bfloat16":
        info["bf16_tensor_cores"] = bf16_tensor_cores
    if info.get("bf16_tensor_cores"):
        from graphspec.backends.tensor_cores import schedule_bf16_matmuls

        try:
            mod, info["bf16_tensor_core_matmuls"] = schedule_bf16_matmuls(prepare(lowered), tgt)
        except Exception as e:  # noqa: BLE001  (TVMError, ScheduleError): DLight's loops, said in the manifest
            mod, info["bf16_tensor_core_matmuls"] = prepare(lowered), 0
            info["bf16_tensor_cores_failed"] = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
    elif database is None:
        mod = prepare(lowered)
    else:
        mod = schedulable(lowered, tgt, info)
        shapes = Counter(str(p.ty.shape) for p in mod["main"].params)
        with tgt, database:
            mod = relax.transform.MetaScheduleApplyDatabase()(mod)
        funcs = [f for f in mod.functions.values() if isinstance(f, tirx.PrimFunc)]
        with tgt:
            # the layout rewrites the schedules asked for become weight-only work: lift it into
            # main_transform_params (composed with the transposes lifted before)
            mod = relax.transform.SplitLayoutRewritePreproc()(mod)
            mod = relax.transform.LiftTransformParams()(mod)
        # weights main() now takes in a shape it did not take before: the repacked ones
        packed = sum((Counter(str(p.ty.shape) for p in mod["main"].params) - shapes).values())
        info.update(prim_funcs=len(funcs), prepacked_weights=packed,
                    tuned_funcs=sum(1 for f in funcs if f.attrs and f.attrs.get("tirx.is_scheduled")))
    try:
        ex = tvm.compile(mod, target=tgt)
    except Exception as e:  # noqa: BLE001  (TVMError, ScheduleError: a schedule rule that failed)
        last = str(e).strip().splitlines()
        where = next((ln for ln in last if "Error" in ln), last[-1] if last else type(e).__name__)
        hint = ("; DLight's fp16 tensor-core matmul schedule fails on a symbolic batch in TVM 0.27: give a "
                "static --batch N" if lowered.dynamic_batch and kind == "cuda" else "")
        raise LowerError(f"TVM could not compile the model for {kind} ({where.strip()[:300]}){hint}") from None
    if kind == "cuda":
        info["cuda_kernels"] = len(cuda_kernels(ex))
    return ex, info


# -- running -------------------------------------------------------------------------------------
@dataclass
class Runner:
    """A loaded executable (or exported .so) with its weights transformed once."""

    executable: Any
    param_names: Sequence[str]
    params: Mapping[str, np.ndarray]
    device: str = "cpu"
    dtype: str = "float32"  # of the weights and float inputs the executable takes; outputs come back as float32
    _vm: Any = field(default=None, repr=False)
    _weights: Any = field(default=None, repr=False)

    def __post_init__(self):
        import tvm
        from tvm import relax

        self.threads = use_cpu_threads()  # before the first kernel starts TVM's thread pool
        dev = tvm.cpu(0) if self.device == "cpu" else tvm.cuda(0)
        if self.device != "cpu" and not dev.exist:
            raise ToolchainError("no CUDA GPU here: a cuda build can be made but not run")
        self.dev = dev
        self._vm = relax.VirtualMachine(self.executable, dev)
        ws = [tvm.runtime.tensor(self._cast(self.params[n]), dev) for n in self.param_names]
        self._weights = list(self._vm["main_transform_params"](ws))  # main's trailing params

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        import tvm

        args = [tvm.runtime.tensor(self._cast(x), self.dev) for x in inputs]
        out = self._vm["main"](*args, *self._weights)
        outs = [o.numpy() for o in out] if isinstance(out, (list, tuple)) or not hasattr(out, "numpy") \
            else [out.numpy()]
        return [o.astype(np.float32) if o.dtype.kind == "V" or o.dtype == np.float16 else o for o in outs] \
            if self.dtype != "float32" else outs

    def _cast(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if self.dtype != "float32" and x.dtype.kind == "f":
            x = x.astype(np_dtype(self.dtype))
        return np.ascontiguousarray(x)

    def time(self, *inputs: np.ndarray, number: int = 5, repeat: int = 3) -> float:
        """Median seconds per call (VM time_evaluator)."""
        import tvm

        args = [tvm.runtime.tensor(self._cast(x), self.dev) for x in inputs]
        self._vm.set_input("main", *args, *self._weights)
        t = self._vm.time_evaluator("invoke_stateful", self.dev, number=number, repeat=repeat)("main")
        return float(t.median)


def export_library(executable: Any, path: str | Path) -> Path:
    path = Path(path)
    executable.export_library(str(path))
    return path


def load_library(path: str | Path):
    import tvm

    return tvm.runtime.load_module(str(path))
