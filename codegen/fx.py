"""torch.fx in both directions: the IR as an fx.GraphModule, and an fx trace back to the IR's ops.

    gm = to_fx(graph)                 # one fx node per IR node, parameters named as the IR's
    gm.load_state_dict(generated.state_dict())
    ir = from_fx(trace(generated))    # an fx trace of the generated module, read back
    op_counts(ir) == op_counts(graph) # same linear / matmul / softmax / layer_norm ... counts

`to_fx` builds modules and calls from the same torch templates as the generated file (each op's
`torch` facet), so the two agree by construction; constants (shift masks, sinusoids) become
buffers. `trace` keeps the generated file's helpers (window_partition, ...) and DropPath as
single nodes, so `from_fx` can name them.
"""

from __future__ import annotations

import ast
import inspect
import operator
import types
from collections import Counter
from functools import cache
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from graphspec.codegen.fill import AttrExpr, fill
from graphspec.codegen.names import identifier
from graphspec.codegen.source import HELPER_ORDER, _env
from torch import nn

from graphspec.analysis import buffers
from graphspec.ir import Graph, Node
from graphspec.ops import CONSTANT, SOURCE, get


@cache
def runtime() -> types.ModuleType:
    """The helpers of generated files (helpers.py.j2) as one importable namespace."""
    tpl = _env().get_template("helpers.py.j2").make_module({"rope_scaling": True, "longrope": True,
                                                                  "weigh_input": True})  # every helper, in full
    src = "import math\n\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
    src += "\n\n\n".join(str(getattr(tpl, h)()).strip("\n") for h in HELPER_ORDER) + "\n"
    mod = types.ModuleType("graphspec.codegen.runtime")
    exec(compile(src, "<graphspec.codegen.runtime>", "exec"), mod.__dict__)  # noqa: S102 - our template
    return mod


def _namespace() -> dict[str, Any]:
    rt = runtime()
    return {**{h: getattr(rt, h) for h in HELPER_ORDER}, "torch": torch, "nn": nn, "F": F,
            "math": __import__("math")}


def _literal_attrs(n: Node, **extra: str) -> dict[str, AttrExpr]:
    from graphspec.codegen.exprs import literal

    out = {k: AttrExpr(literal(v), v) for k, v in n.attrs}
    out.update({k: AttrExpr(v) for k, v in extra.items()})
    return out


def _set(root: nn.Module, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    m = root
    for p in parents:
        if not hasattr(m, p):
            m.add_module(p, nn.Module())
        m = getattr(m, p)
    if isinstance(value, nn.Module):
        m.add_module(leaf, value)
    elif isinstance(value, nn.Parameter):
        m.register_parameter(leaf, value)
    else:
        m.register_buffer(leaf, value, persistent=False)


def _owner(root: nn.Module, path: str) -> nn.Module:
    m = root
    for p in filter(None, path.split(".")):
        if not hasattr(m, p):
            m.add_module(p, nn.Module())
        m = getattr(m, p)
    return m


def to_fx(graph: Graph) -> fx.GraphModule:
    """The IR as an fx.GraphModule: parameters at the IR's names, one fx node per IR node."""
    root, g = nn.Module(), fx.Graph()
    ns = _namespace()
    env: dict[str, fx.Node] = {}
    ref = torch.empty(0)
    for n in graph:
        d = get(n.op)
        t = d.torch
        ops = [f"_op{i}_" for i in range(len(n.inputs))]
        if n.op == "input":
            env[n.name] = g.placeholder(identifier(n.name))
            continue
        weights = n.a.get("weights")
        if d.has(SOURCE) and d.has(CONSTANT) and not n.inputs:  # computed now: a buffer
            text = fill(t.call, [], _literal_attrs(n, ref="_ref"))
            value = eval(text, {**ns, "_ref": ref})  # noqa: S307 - our own template
            _set(root, n.name, value)
            env[n.name] = g.get_attr(n.name)
            continue
        owner, extra, call = "", {}, t.call
        built = {k for k, _ in root.named_modules()} | {k for k, _ in root.named_parameters()}
        if weights and weights == n.module and t.setup:  # parameters on the owning module (Swin's table)
            for line in t.setup:
                exec(fill(line, [], _literal_attrs(n)), {**ns, "self": _owner(root, owner := n.module)})  # noqa: S102
        elif weights and weights != n.name and ("." in _relative(n.module, weights)  # a tied head
                                                or (weights in graph and graph[weights].op != n.op)):  # embed_tokens
            call, extra["weights"] = t.shared, "self." + weights
        elif t.init is not None or t.setup:  # a module (or parameter) of its own, or one built before
            path = weights if weights in built else n.name
            owner, leaf = path.rsplit(".", 1) if "." in path else ("", path)
            extra["mod"] = leaf
            if path not in built:
                if t.init is not None:
                    _set(root, path, eval(fill(t.init, [], _literal_attrs(n), init=True), ns))  # noqa: S307
                for line in t.setup:
                    exec(fill(line, [], _literal_attrs(n, mod=leaf)), {**ns, "self": _owner(root, owner)})  # noqa: S102
            if call == "self.{mod}({0})":
                env[n.name] = g.call_module(path, tuple(env[i] for i in n.inputs))
                continue
        args = [env[i] for i in n.inputs]
        text = fill(call, ops, _literal_attrs(n, ref="_ref", **extra))
        fn, attrs = _compile(n, text, len(ops), ns)
        gets = [g.get_attr(f"{owner}.{a}" if owner else a) for a in attrs]
        env[n.name] = g.call_function(fn, tuple(args + gets))
    outs = [env[o] for o in graph.outputs]
    g.output(outs[0] if len(outs) == 1 else tuple(outs))
    gm = fx.GraphModule(root, g, class_name=identifier(graph.name))
    state = set(buffers(graph))  # what the ops declare as state (a router's correction bias): loaded as weights are
    for name, _ in list(gm.named_buffers()):  # the rest are constants, as in the generated file: not state
        if name in state:
            continue
        owner, _, leaf = name.rpartition(".")
        gm.get_submodule(owner)._non_persistent_buffers_set.add(leaf)
    return gm


def _relative(module: str, path: str) -> str:
    return path[len(module) + 1:] if module and path.startswith(module + ".") else path


def _compile(n: Node, text: str, arity: int, ns: dict) -> tuple[Any, list[str]]:
    """`text` as a function of its operands and of the `self.<path>` attributes it reads."""
    tree = ast.parse(text, mode="eval")
    found: list[str] = []

    class Rewrite(ast.NodeTransformer):
        def visit_Attribute(self, a):
            chain, x = [], a
            while isinstance(x, ast.Attribute):
                chain.append(x.attr)
                x = x.value
            if isinstance(x, ast.Name) and x.id == "self":
                path = ".".join(reversed(chain))
                if path not in found:
                    found.append(path)
                return ast.copy_location(ast.Name(f"_s{found.index(path)}_", ast.Load()), a)
            return self.generic_visit(a)

    body = ast.unparse(Rewrite().visit(tree))
    params = [f"_op{i}_" for i in range(arity)] + [f"_s{i}_" for i in range(len(found))]
    code = f"def _fn({', '.join(params)}):\n    return {body}\n"
    scope = {**ns, "__name__": "graphspec.codegen.fx_ops"}
    exec(compile(code, f"<graphspec.fx {n.op}>", "exec"), scope)  # noqa: S102 - our own template
    fn = scope["_fn"]
    fn.__name__ = fn.__qualname__ = identifier(n.op)  # fx names its nodes after the op kind
    return fn, found


# -- back from fx --------------------------------------------------------------------------------
MODULES = {nn.Linear: "linear", nn.Conv2d: "conv2d", nn.LayerNorm: "layer_norm", nn.Embedding: "embedding",
           nn.Dropout: "dropout", nn.GELU: "gelu", nn.ReLU: "relu", nn.BatchNorm2d: "batch_norm"}
FUNCTIONS = {operator.matmul: "matmul", torch.matmul: "matmul", torch.bmm: "matmul", F.linear: "linear",
             torch.softmax: "softmax", F.softmax: "softmax", F.scaled_dot_product_attention: "attention",
             F.gelu: "gelu", F.relu: "relu", torch.relu: "relu", torch.tanh: "tanh", F.layer_norm: "layer_norm",
             F.embedding: "embedding", operator.add: "add", torch.add: "add", operator.mul: "scale",
             torch.cat: "cat", F.dropout: "dropout", torch.conv2d: "conv2d", F.conv2d: "conv2d"}
METHODS = {"softmax": "softmax", "matmul": "matmul", "mean": "mean", "chunk": "chunk", "tanh": "tanh",
           "relu": "relu"}
HELPER_OPS = {"window_partition": "window_partition", "window_reverse": "window_reverse", "roll_tokens": "roll",
              "patch_merge": "patch_merge", "causal_mask": "causal_mask", "add_window_mask": "add_window_mask",
              "attention": "attention", "shift_mask": "shift_mask", "sinusoidal": "sinusoidal",
              # the LLM helpers (they branch on shapes and settings: one call each)
              "apply_rotary": "rotary", "sliding_mask": "sliding_mask", "chunked_mask": "chunked_mask",
              "local_mask": "local_mask", "attn_temperature": "attn_temperature", "alibi": "alibi",
              "softmax_with_sinks": "sink_softmax", "attention_with_sinks": "attention", "clamped_swiglu": "clamped_swiglu",
              "last_token": "last_token", "interpolate_pos": "interpolate_pos", "sine_pos_2d": "sine_pos_2d",
              "relative_bias": "relative_bucket_bias"}
# generated modules whose forward depends on the data (a mixture's dispatch to its experts): kept as
# one call each
LEAF_MODULES = ("DropPath", "Experts", "ClampedSwiGLUExperts", "TopKRouter", "SoftmaxTopKRouter")


class Tracer(fx.Tracer):
    """Keeps DropPath (it branches on training) and a mixture's experts and router (they dispatch
    on the data) as one module call each and, with `helpers`, the generated file's free
    functions as single calls."""

    def __init__(self, helpers: tuple = ()):
        super().__init__(autowrap_functions=helpers)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m).__name__ in LEAF_MODULES or super().is_leaf_module(m, qualname)


def trace(module: nn.Module) -> fx.GraphModule:
    """An fx trace of a generated module, its helper functions kept whole, optional inputs
    (token_type_ids) at their defaults."""
    glb = vars(__import__(type(module).__module__, fromlist=["_"])) if type(module).__module__ in __import__(
        "sys").modules else {}
    helpers = tuple(f for name, f in glb.items() if name in HELPER_OPS and isinstance(f, types.FunctionType))
    params = inspect.signature(type(module).forward).parameters
    optional = {k: None for k, p in params.items() if p.default is None}  # NOTE: [Optional inputs]
    graph = Tracer(helpers).trace(module, concrete_args=optional or None)
    return fx.GraphModule(module, graph, class_name=type(module).__name__)


def from_fx(gm: fx.GraphModule, *example_inputs: torch.Tensor) -> Graph:
    """The fx graph as a graphspec Graph: one node per fx call, named by graphspec op kinds where
    one fits (`linear`, `matmul`, `softmax`, ...), `fx.<target>` otherwise. With example inputs,
    shapes come from torch.fx's ShapeProp."""
    if example_inputs:
        from torch.fx.passes.shape_prop import ShapeProp

        ShapeProp(gm).propagate(*example_inputs)
    mods = dict(gm.named_modules())
    out = Graph(type(gm).__name__)
    names: dict[str, str] = {}
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        op, module = _kind(node, mods)
        inputs = tuple(names[a.name] for a in node.all_input_nodes if a.name in names)
        meta = node.meta.get("tensor_meta")
        shape = tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else ()
        name = out.fresh(node.target if node.op in ("call_module", "get_attr") else node.name)
        out.add(Node(name, op, inputs, (), shape, "f32", module))
        names[node.name] = name
    ret = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    rets = ret if isinstance(ret, tuple | list) else (ret,)
    out.outputs = tuple(names[r.name] for r in rets if isinstance(r, fx.Node))
    return out


def _kind(node: fx.Node, mods: dict) -> tuple[str, str]:
    if node.op == "placeholder":
        return "input", ""
    if node.op == "get_attr":
        return "parameter", node.target.rsplit(".", 1)[0] if "." in node.target else ""
    if node.op == "call_module":
        m = mods[node.target]
        kind = MODULES.get(type(m)) or ("drop_path" if type(m).__name__ == "DropPath" else f"fx.{type(m).__name__}")
        return kind, node.target.rsplit(".", 1)[0] if "." in node.target else ""
    stack = node.meta.get("nn_module_stack") or {}
    module = next(reversed(stack.values()))[0] if stack else ""
    if node.op == "call_method":
        return METHODS.get(node.target, f"fx.{node.target}"), module
    name = getattr(node.target, "__name__", str(node.target))
    return FUNCTIONS.get(node.target) or HELPER_OPS.get(name) or f"fx.{name}", module


def op_counts(graph: Graph, kinds: tuple[str, ...] | None = None) -> Counter:
    """How many nodes of each op kind (only `kinds` when given)."""
    c = Counter(n.op for n in graph)
    return Counter({k: c[k] for k in kinds}) if kinds else c
