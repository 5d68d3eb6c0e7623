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

import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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


class ToolchainError(RuntimeError):
    """A target's toolchain or device is missing (no nvcc, no GPU): a user error."""


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


# -- targets and building ------------------------------------------------------------------------
def target(kind: str, arch: str | None = None):
    """`llvm` (this CPU: its instruction set and all its cores) or `cuda` for `arch` (sm_90;
    default: `cuda_arch()`).

    NB: without `mcpu`, LLVM emits baseline x86-64 (SSE2): MetaSchedule's best Swin-T matmuls
    then top out near 35 GMAC/s on a machine where PyTorch's reach 165 (AVX-512). So the host's
    CPU is named, as `-mcpu=native` would; a library built so needs that instruction set where
    it runs. GRAPHSPEC_LLVM_MCPU=x86-64 (or another LLVM CPU name) builds for another machine."""
    import tvm

    if kind == "llvm":
        return tvm.target.Target({"kind": "llvm", "mcpu": llvm_cpu(), "num-cores": cpu_threads()})
    if kind == "cuda":
        check_cuda_toolchain()
        from graphspec.backends.cuda import cuda_arch

        return tvm.target.Target({"kind": "cuda", "arch": arch or cuda_arch()}, host="llvm")
    raise ValueError(f"unknown TVM target {kind!r}; use llvm or cuda")


def cpu_threads() -> int:
    """Threads for TVM's CPU kernels: TVM_NUM_THREADS if set, else the physical cores this
    process may run on (what PyTorch and onnxruntime use by default)."""
    if os.environ.get("TVM_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["TVM_NUM_THREADS"]))
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:  # no sysfs topology: count logical CPUs
            cores.add(("cpu", str(c)))
    return max(1, len(cores))


def use_cpu_threads() -> int:
    """Make TVM's CPU runtime use `cpu_threads()` threads, in this process and the ones it starts
    (MetaSchedule's measuring workers); returns the count. Call before the first kernel runs.

    NB: left alone, TVM's thread pool takes half the logical CPUs on x86, assuming two
    hyper-threads per core: on this 2-vCPU machine (one thread per core) every kernel ran on
    one core while PyTorch used two, and tuning measured schedules on one core too."""
    n = cpu_threads()
    os.environ["TVM_NUM_THREADS"] = str(n)
    return n


def llvm_cpu() -> str:
    """The LLVM CPU name llvm builds target: GRAPHSPEC_LLVM_MCPU, else this machine's."""
    from tvm.target import codegen

    name = os.environ.get("GRAPHSPEC_LLVM_MCPU") or codegen.llvm_get_system_cpu()
    if not codegen.llvm_is_valid_cpu(name, codegen.llvm_get_system_triple()):
        raise ToolchainError(f"LLVM does not know the CPU {name!r} (GRAPHSPEC_LLVM_MCPU); "
                             "use a name such as x86-64, skylake-avx512 or native's")
    return name


def check_cuda_toolchain() -> str:
    """The path of nvcc, or ToolchainError with the fix."""
    import shutil

    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
                                    if os.environ.get("CUDA_HOME") else None)
    if not nvcc or not os.path.exists(nvcc):
        raise ToolchainError("the cuda target needs nvcc (the CUDA toolkit) on PATH; "
                             "install it or set CUDA_HOME, or build for llvm")
    return nvcc


def has_cuda_device() -> bool:
    try:
        import tvm

        return bool(tvm.cuda(0).exist)
    except Exception:  # noqa: BLE001  (no runtime, no driver)
        return False


def prepare(lowered: Lowered):
    """The module as built: weight-only work lifted into `main_transform_params`."""
    from tvm import relax

    return relax.transform.LiftTransformParams()(lowered.mod)


ROW_MULTIPLE = 8  # pad_rows pads a matmul's rows to a multiple of this


def awkward_rows(n: int) -> bool:
    """True for a row count whose only split is n = 1 × n: a prime factor above 16 and not a
    multiple of ROW_MULTIPLE (ViT's 197 tokens, ViT-H/14's 257); 196 or 3136 are not."""
    if n < 32 or n % ROW_MULTIPLE == 0:
        return False
    m, p, big = n, 2, 1
    while p * p <= m:
        while m % p == 0:
            m //= p
            big = p
        p += 1
    return max(big, m) > 16


def pad_rows(mod: Any, stats: dict | None = None):
    """Rewrite `matmul(x, W)` with a 2-D weight W and awkward row count (`awkward_rows`) as
    `pad(x)` to the next multiple of ROW_MULTIPLE rows -> matmul -> `strided_slice` back.

    NB: MetaSchedule tiles a loop only by exact divisors of its extent (SamplePerfectTile): a
    197-row matmul can only be split 1 × 197, so ViT-B/16's projections keep a whole column of
    rows per tile. Measured, fc2 (197×3072 @ 3072×768), 64 trials each, 2 threads: 115 GFLOP/s
    at 197 rows, 186 at 200 (the zero rows cost 1.5 %). Padding inside the kernel with
    `sch.pad_einsum` reached 104. No kernel is added: FuseOps folds each slice into its matmul's
    epilogue (bias, residual, GELU) and each pad into the kernel that makes the matmul's input
    (a layer norm, the previous GELU epilogue). `stats["padded_matmuls"]` counts them."""
    import tvm
    from tvm import relax, tirx
    from tvm.relax.expr_functor import PyExprMutator, mutator

    matmul = tvm.ir.Op.get("relax.matmul")

    @mutator
    class PadRows(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if call.op != matmul:
                return call
            x, w = call.args
            xs, ws = x.ty, w.ty
            if ws.ndim != 2 or xs.ndim < 2 or xs.shape is None:
                return call
            n = xs.shape.values[-2]
            if not isinstance(n, tirx.IntImm) or not awkward_rows(int(n)):
                return call
            n = int(n)
            extra = -n % ROW_MULTIPLE
            widths = [0, 0] * (xs.ndim - 2) + [0, extra, 0, 0]
            padded[0] += 1
            xp = self.builder_.emit(relax.op.nn.pad(x, widths))
            yp = self.builder_.emit(relax.op.matmul(xp, w, out_dtype=call.attrs.out_dtype))
            return relax.op.strided_slice(yp, axes=[xs.ndim - 2], begin=[0], end=[n])

    padded = [0]
    for gv, f in list(mod.functions.items()):
        if isinstance(f, relax.Function) and str(gv.name_hint) == "main":
            mod[gv] = PadRows().visit_expr(f)
    if stats is not None:
        stats["padded_matmuls"] = padded[0]
    return mod


def schedulable(lowered: Lowered, tgt: Any, stats: dict | None = None):
    """The module MetaSchedule tunes and tuned builds apply its records to: weight-only work
    lifted, legalized and fused (the "zero" pipeline), with `main`'s weights marked layout-free.

    Layout-free weights let a tuned schedule keep them in the blocked layout its loops read
    (MetaSchedule's RewriteLayout): the repacking becomes part of `main_transform_params`, run
    once at load, instead of each matmul striding through a row-major weight. Measured on Swin-T's
    stage-3 fc1 (196×384 @ 384×1536, 64 trials each): 124 GMAC/s prepacked, 105 not. The
    attribute is part of a kernel's workload, so tuning and building must both come through here.
    Matmuls with an awkward row count (ViT's 197 tokens) are padded first (`pad_rows`)."""
    from tvm import relax

    with tgt:
        mod = relax.get_pipeline("zero")(pad_rows(prepare(lowered), stats))  # no database current: nothing applied
        return relax.transform.AttachAttrLayoutFreeBuffers()(mod)


def build(lowered: Lowered, kind: str = "llvm", *, database: Any = None,
          arch: str | None = None) -> tuple[Any, dict]:
    """Compile for `kind` -> (executable, info). With a MetaSchedule `database` the tuned
    schedules are applied and the weights they read in a blocked layout are prepacked by
    `main_transform_params`; info["tuned_funcs"] counts the PrimFuncs that got a schedule, so
    that a database that silently matches nothing shows up, info["prepacked_weights"] the
    weights whose layout a schedule rewrote, info["padded_matmuls"] the matmuls `pad_rows`
    padded. info["threads"]: the CPU threads its kernels will run on (`cpu_threads`)."""
    import tvm
    from graphspec.backends.cuda import cuda_arch
    from tvm import relax, tirx

    arch = cuda_arch(arch) if kind == "cuda" else None
    tgt = target(kind, arch)
    info: dict[str, Any] = {"target": str(tgt.kind.name), "arch": arch, "dtype": lowered.dtype,
                            "mcpu": str(tgt.attrs.get("mcpu", "")) if kind == "llvm" else None,
                            "threads": cpu_threads() if kind == "llvm" else None}
    if database is None:
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


def cuda_kernels(executable: Any) -> list[str]:
    """Names of the CUDA `__global__` kernels in a built executable (empty for llvm builds)."""
    src = cuda_source(executable)
    return re.findall(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(', src)


def cuda_source(executable: Any) -> str:
    return "\n".join(cuda_source_modules(executable))


def cuda_source_modules(executable: Any) -> list[str]:
    """The CUDA source of each cuda module a built executable imports (see backends/cuda.py)."""
    mods, stack = [], [executable.mod if hasattr(executable, "mod") else executable]
    while stack:
        m = stack.pop()
        mods.append(m)
        stack.extend(m.imports)
    return [m.inspect_source() for m in mods if m.kind == "cuda"]
