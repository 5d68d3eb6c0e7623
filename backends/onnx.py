"""ONNX export straight from the IR: one `onnx` emitter per op kind, beside its rules.

Each op class in graphspec/ops has a facet

    def onnx(e, x, *, out_features, **_):         # e: an `Emitter`; x: the operand's tensor name
        y = e("MatMul", x, e("Transpose", e.param("weight"), perm=[1, 0]))
        return e("Add", y, e.param("bias")) if bias else y

that adds ONNX nodes through the emitter and returns the name of the tensor holding the op's
result. The exporter walks the IR in order, calls each facet and names the last tensor of an
op after the IR node (`layers.0.blocks.1.attn`), so the ONNX graph reads like the IR.

# NOTE: [Batch-agnostic emitters] Emitters never bake the batch size into a shape: reshapes
# use 0 (copy) and -1 (infer) for the leading dims, and the few ops that must know the batch
# (Expand of ViT's class token, Tile of Swin's window mask) ask `e.batch(x)`, a constant when
# the batch is static and a Shape slice under `--batch dynamic`. The same IR therefore
# exports with a symbolic `batch` dim by changing only the graph's input and output types.

Parameters become initializers under their IR names and IR shapes (`blocks.0.mlp.fc1.weight`
is (out, in), as in the state dict); the transposes that MatMul needs are nodes, which
onnxruntime folds when it loads the model. The fused `attention` op becomes one ONNX
`Attention` (opset 23) node.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.analysis import tensors
from graphspec.ir import Graph, Node
from graphspec.ops import get

OPSET = 23  # Attention (the fused op) and RMSNormalization arrive in opset 23; onnxruntime ≥ 1.23
ONNX_DTYPES = {"f32": np.float32, "i64": np.int64}


class ExportError(ValueError):
    """The IR uses something the ONNX exporter cannot express (an op without an emitter, ...)."""


class Emitter:
    """What an op's `onnx` facet sees: node creation, constants, parameters and batch size."""

    def __init__(self, graph: Graph, params: Mapping[str, np.ndarray], dynamic_batch: bool):
        import onnx  # noqa: F401  (fail early with ImportError if onnx is missing)

        self.graph = graph
        self.params = params
        self.dynamic_batch = dynamic_batch
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []  # graph inputs (ValueInfoProto)
        self.initializers: dict[str, np.ndarray] = {}
        self._const_by_key: dict[tuple, str] = {}
        self._cache: dict[tuple, Any] = {}
        self._used: set[str] = set()
        # IR node and parameter names: tensors that will carry them later are never taken by a
        # constant or an intermediate named earlier
        self._reserved: set[str] = set(tensors(graph)) | {n.name for n in graph}
        self.node: Node | None = None  # the IR node being emitted
        self.shapes: dict[str, tuple] = {}  # tensor name -> IR shape, for the IR nodes' results

    # -- nodes --------------------------------------------------------------------------
    def __call__(self, op_type: str, *inputs: str | None, outputs: int = 1, domain: str = "",
                  **attrs: Any) -> Any:
        """Add one ONNX node; returns its output name (a list when `outputs` > 1). A None
        input is an omitted optional operand."""
        from onnx import helper

        base = f"{self.node.name}/{op_type}" if self.node else op_type
        outs = [self._fresh(base if outputs == 1 else f"{base}.{i}") for i in range(outputs)]
        ins = ["" if i is None else i for i in inputs]
        while ins and ins[-1] == "":
            ins.pop()
        self.nodes.append(helper.make_node(op_type, ins, outs, name=outs[0], domain=domain, **attrs))
        return outs[0] if outputs == 1 else outs

    def _fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self._used or name in self._reserved:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    # -- constants and parameters --------------------------------------------------------
    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """An initializer holding `value`; equal constants are stored once."""
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_by_key:
            name = self._fresh(hint)
            self.initializers[name] = arr
            self._const_by_key[key] = name
        return self._const_by_key[key]

    def ints(self, *values: int) -> str:
        """A 1-D int64 constant (shapes, axes, repeats)."""
        return self.const(np.array(values, dtype=np.int64), "ints_" + "_".join(str(v) for v in values).replace("-", "m"))

    def scalar(self, value: float, dtype: str = "f32") -> str:
        return self.const(np.array(value, dtype=ONNX_DTYPES[dtype]), f"scalar_{value:g}")

    def value(self, name: str) -> np.ndarray | None:
        """The value of `name` when it is a constant initializer (not a parameter), else None."""
        if name in self.initializers and name not in self.params:
            return self.initializers[name]
        return None

    def param(self, key: str = "") -> str:
        """The initializer of the current node's parameter `key` (`weight`, `bias`, ...), named
        as in `graphspec.analysis.parameters` (shared weights use their owner's name)."""
        n = self.node
        owner = n.a.get("weights") or n.name
        name = f"{owner}.{key}" if key else owner
        if name not in self.initializers:
            try:
                arr = np.asarray(self.params[name], dtype=np.float32)
            except KeyError:
                raise ExportError(f"%{n.name}: no value for parameter {name}") from None
            self.initializers[name] = arr
            self._used.add(name)
        return name

    def cached(self, key: tuple, make) -> Any:
        """Memoise a sub-computation (one Split for the three chunks of a fused qkv, one
        Shape per tensor)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def tensor(self, value: Any):
        """A TensorProto, for attributes (ConstantOfShape's value)."""
        from onnx import numpy_helper

        return numpy_helper.from_array(np.asarray(value))

    def input(self) -> str:
        """Declare the current `input` node as a graph input."""
        self.inputs.append(_value_info(self.node, self.dynamic_batch))
        self._used.add(self.node.name)
        return self.node.name

    # -- shapes ------------------------------------------------------------------------------
    def shape(self, x: str) -> tuple:
        """The IR shape of tensor `x` (an operand of the current node)."""
        return self.shapes[x]

    def static_batch(self, x: str, size: int) -> bool:
        """True when dim 0 of `x` is known to be `size` (no Expand/Tile needed for size 1)."""
        return not self.dynamic_batch and self.shapes.get(x, (None,))[0] == size

    def batch_shape(self, x: str, *rest: int, divide: int = 1) -> str:
        """A shape tensor (B, *rest), B = dim 0 of `x` / `divide`."""
        dim0 = self.shapes.get(x, (None,))[0]
        if not self.dynamic_batch and isinstance(dim0, int):
            return self.ints(dim0 // divide, *rest)
        b = self.batch(x, divide)
        return self.cached(("batch_shape", b, rest), lambda: self("Concat", b, self.ints(*rest), axis=0))

    def batch(self, x: str, divide: int = 1) -> str:
        """A (1,) int64 tensor: dim 0 of `x` divided by `divide` (see [Batch-agnostic emitters]).

        Under a dynamic batch this is the batch of the first graph input, read by one Shape node
        for the whole model: dim 0 of every batch-carrying tensor is the input's batch times
        `divide` (the windows of Swin)."""
        dim0 = self.shapes.get(x, (None,))[0]
        if not self.dynamic_batch and isinstance(dim0, int):
            return self.ints(dim0 // divide)
        src = self.inputs[0].name if self.inputs else x
        return self.cached(("batch", src), lambda: self("Shape", src, start=0, end=1))


def export(graph: Graph, params: Mapping[str, np.ndarray], *, dynamic_batch: bool = False,
           opset: int = OPSET, check: bool = True, dtype: str = "float32"):
    """The IR as an `onnx.ModelProto`; `params` maps IR parameter names to arrays. With `dtype`
    float16 or bfloat16 the model is converted after export (`to_half`)."""
    import onnx
    from onnx import helper, numpy_helper

    missing = sorted({n.op for n in graph if get(n.op).onnx is None})
    if missing:
        raise ExportError(f"no ONNX emitter for op kind(s) {', '.join(missing)}; "
                          "add an `onnx` facet beside the op's rules in graphspec/ops")
    want = tensors(graph)
    absent = sorted(set(want) - set(params))
    if absent:
        raise ExportError(f"{len(absent)} parameter(s) have no value, e.g. {absent[:3]}")
    for name, shape in want.items():
        if tuple(np.shape(params[name])) != tuple(shape):
            raise ExportError(f"parameter {name} has shape {np.shape(params[name])}, the IR says {shape}")

    e = Emitter(graph, params, dynamic_batch)
    env: dict[str, str] = {}
    for n in graph:
        e.node = n
        start = len(e.nodes)
        try:
            out = get(n.op).onnx(e, *(env[i] for i in n.inputs), **n.a)
        except ExportError:
            raise
        except Exception as err:  # an emitter bug: say which node, keep the cause
            raise ExportError(f"%{n.name} ({n.op}, {n.loc or 'no location'}): {err}") from err
        out = _rename_last(e, start, out, n.name)
        env[n.name] = out
        e.shapes.setdefault(out, n.shape)
    e.node = None

    outputs = []
    for o in graph.outputs:
        name = env[o]
        if name != o:
            e.nodes.append(helper.make_node("Identity", [name], [o], name=o))
        outputs.append(_value_info(graph[o], dynamic_batch))
    used = {i for nd in e.nodes for i in nd.input} | set(graph.outputs)
    inits = [numpy_helper.from_array(a, name) for name, a in e.initializers.items() if name in used]
    g = helper.make_graph(e.nodes, graph.name, e.inputs, outputs, inits,
                          doc_string=f"{graph.meta.get('paper') or graph.name}; exported by graphspec")
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="graphspec", producer_version=_version())
    model.ir_version = min(model.ir_version, 10)  # onnxruntime 1.2x reads IR ≤ 10
    if dtype != "float32":
        to_half(model, dtype)
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def _rename_last(e: Emitter, start: int, out: str, name: str) -> str:
    """Name the op's result tensor after the IR node when this op produced it."""
    made = e.nodes[start:]
    if not made or out not in {o for nd in made for o in nd.output} or name in e._used - {out}:
        return out
    for nd in made:
        for lst in (nd.input, nd.output):
            for i, t in enumerate(lst):
                if t == out:
                    lst[i] = name
        if nd.name == out:
            nd.name = name
    e._used.add(name)
    for key, val in list(e._cache.items()):
        if val == out:
            e._cache[key] = name
    return name


def _value_info(n: Node, dynamic_batch: bool):
    from onnx import TensorProto, helper

    dims: list[Any] = [d if isinstance(d, int) else str(d) for d in n.shape]
    if dynamic_batch and dims:
        dims[0] = "batch"
    elem = TensorProto.INT64 if n.dtype == "i64" else TensorProto.FLOAT
    return helper.make_tensor_value_info(n.name, elem, dims)


HALF = {"float16": 10, "bfloat16": 16}  # TensorProto.FLOAT16, TensorProto.BFLOAT16
FP32_NODES = ("Softmax",)  # computed in float32 between Casts; LayerNormalization's stash_type=1 already is,
# and Attention gets softmax_precision=FLOAT


def to_half(model, dtype: str) -> None:
    """Convert an exported float32 model in place: float initializers, graph inputs and outputs,
    Cast-to-float and float constants become `dtype`, so every float tensor is in it; Softmax runs
    in float32 between two Casts, Attention's softmax in float32 (softmax_precision), and LayerNormalization/RMSNormalization keep their float32
    statistics (stash_type=1, the default). See backends/tvm.py [Half precision].

    NB: onnxruntime's CPU provider has float16 kernels for these ops but no bfloat16 ones (its
    CUDA provider has both): a bfloat16 model is valid ONNX that runs on GPUs (`session` says so)."""
    from onnx import TensorProto, helper, numpy_helper

    elem = HALF[dtype]
    np_half = _np_half(dtype)
    for i, t in enumerate(model.graph.initializer):
        if t.data_type == TensorProto.FLOAT:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np_half), t.name))
    for v in (*model.graph.input, *model.graph.output):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = elem
    nodes = []
    for n in model.graph.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = elem
            if a.type == a.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np_half), a.t.name))
        if n.op_type == "Attention":  # opset 23: the softmax inside in float32
            n.attribute.append(helper.make_attribute("softmax_precision", TensorProto.FLOAT))
        if n.op_type in FP32_NODES:
            x32, y32 = f"{n.input[0]}/fp32", f"{n.output[0]}/fp32"
            nodes.append(helper.make_node("Cast", [n.input[0]], [x32], name=x32, to=TensorProto.FLOAT))
            out = n.output[0]
            n.input[0], n.output[0] = x32, y32
            nodes += [n, helper.make_node("Cast", [y32], [out], name=f"{out}/cast", to=elem)]
        else:
            nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _np_half(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.float16


def input_dtype(sess, name: str):
    """The numpy dtype onnxruntime wants for input `name` of `sess`."""
    t = next(i.type for i in sess.get_inputs() if i.name == name)
    return {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(int64)": np.int64,
            "tensor(bfloat16)": _np_half("bfloat16")}.get(t, None)


def run_session(sess, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run with float inputs cast to the model's input types; half outputs come back float32."""
    feed = {}
    for k, v in inputs.items():
        want = input_dtype(sess, k)
        v = np.asarray(v)
        feed[k] = v.astype(want) if want is not None and v.dtype != want else v
    return [o.astype(np.float32) if o.dtype == np.float16 or o.dtype.kind == "V" else o
            for o in sess.run(None, feed)]


def _version() -> str:
    import graphspec

    return graphspec.__version__


def save(model, path: str | Path) -> Path:
    """Serialize atomically (graphspec.io.atomic_write)."""
    from graphspec.io import atomic_write

    return atomic_write(path, model.SerializeToString())


def session(model_or_path, threads: int | None = None):
    """An onnxruntime CPU session, with denormals flushed to zero.

    NB: Swin's SW-MSA mask is -100 across regions (as in the official code), so the shifted
    blocks' softmax makes exp(-100) ≈ 3.7e-44, a float32 denormal, and x86 arithmetic on
    denormals is ~100× slower: without the flush onnxruntime's Attention takes 5.0 ms instead
    of 0.8 ms on Swin-T's first shifted block, 68 vs 55 ms for the whole model (2 threads).
    Values below 1.2e-38 become 0, far below fp32 tolerances. Give the same option to sessions
    of your own (`session.set_denormal_as_zero`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    if threads:
        opts.intra_op_num_threads = threads
    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else \
        model_or_path if isinstance(model_or_path, bytes) else str(model_or_path)
    try:
        return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types
        if "NOT_IMPLEMENTED" not in str(e) or not _input_types(src):
            raise
        raise ExportError("this ONNX model is bfloat16, and onnxruntime's CPU provider has no bfloat16 "
                          "kernels (MatMul, Add, Softmax, ...): run it with the CUDA provider on a GPU, "
                          "or build --dtype fp16 or fp32") from None


def _input_types(src) -> bool:
    """True when a serialized model (bytes or path) takes a bfloat16 input."""
    import onnx

    m = onnx.load_from_string(src) if isinstance(src, bytes) else onnx.load(src, load_external_data=False)
    return any(i.type.tensor_type.elem_type == HALF["bfloat16"] for i in m.graph.input)


def run(model_or_path, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return run_session(session(model_or_path), inputs)


def node_count(model) -> int:
    return len(model.graph.node)
