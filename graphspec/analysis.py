"""Parameter counts and FLOPs from the IR, numeric or symbolic (sympy).

# NOTE: [Counting conventions]
# - params: every trainable scalar, once per weight path (tied weights count once). Buffers
#   (Swin's relative position index, the shift mask, sinusoidal tables) are not parameters.
# - MACs (default): multiply-accumulates of linear, conv2d and matmul, and of fused attention
#   as QKᵀ + ·V. This is torchvision's `_ops` convention and what the papers call "FLOPs".
#   NB: bias adds, softmax, scaling, masks, norms, activations, residual adds, pooling and
#   data movement are not counted; the causal half of masked attention is counted (the matmul
#   is dense).
# - options add one op per output element of: `norms` (LayerNorm: Swin's official `flops()`
#   counts it so), `softmax`, `elementwise` (activations, adds, scales, masks).
# - `flops=True` reports 2 × MACs (one multiply and one add), for hardware-utilisation maths.
# - `drop_cls_and_head=True` ("swin-paper") counts the model re-lowered without the class
#   token and the head (`counted_graph`): the convention of Swin Table 1's ViT/DeiT figures.
# - Swin's official `flops()` = convention "swin" + `swin_flops_quirk` (its final-norm term).
#   docs/conventions.md gives the arithmetic.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sympy

from graphspec.ir import Graph, Node
from graphspec.ops import ELEMENTWISE, MAC, NORM, SOFTMAX, get, numel


@dataclass(frozen=True)
class Convention:
    """What to count. The default is the papers' MACs."""

    norms: bool = False
    softmax: bool = False
    elementwise: bool = False
    flops: bool = False  # report 2×MAC
    drop_cls_and_head: bool = False  # count the spec re-lowered without class token and head
    unmasked: bool = False  # attention matmuls count only the (query, key) pairs a causal/sliding mask keeps

    @classmethod
    def named(cls, name: str) -> Convention:
        try:
            return CONVENTIONS[name]
        except KeyError:
            raise ValueError(f"unknown convention {name!r}; known: {', '.join(CONVENTIONS)}") from None


CONVENTIONS = {
    "macs": Convention(),  # torchvision `_ops`; the papers' "FLOPs"
    "swin": Convention(norms=True),  # Swin's official flops(): MACs + LayerNorm elements
    "all": Convention(norms=True, softmax=True, elementwise=True),
    "flops": Convention(flops=True),  # 2 x MACs
    "swin-paper": Convention(drop_cls_and_head=True),  # Swin Table 1's ViT/DeiT: patch tokens only, no head
    "unmasked": Convention(unmasked=True),  # causal N(N+1)/2, sliding Σᵢ min(i+1, W) pairs per head
}

SWIN_PAPER_VARIANT = "no_cls_no_head"


def swin_paper_spec(spec):
    """`spec` without the class token (and registers) and the head (the "swin-paper" convention)."""
    from dataclasses import replace

    from graphspec.spec import HeadSpec

    return replace(spec, embed=replace(spec.embed, cls_token=False, dist_token=False, registers=0), head=HeadSpec("none"))


def counted_graph(spec, g: Graph, conv: Convention) -> Graph:
    """The graph that `conv` counts: `g` itself, or for "swin-paper" the spec lowered again
    without class token and head (so N is the number of patches, as in Swin Table 1)."""
    if not conv.drop_cls_and_head or g.meta.get("variant") == SWIN_PAPER_VARIANT:
        return g
    from graphspec.lower import lower

    out = lower(swin_paper_spec(spec), symbolic=bool(g.meta.get("symbolic")))
    out.meta["variant"] = SWIN_PAPER_VARIANT
    return out


def _check_variant(g: Graph, conv: Convention) -> None:
    if conv.drop_cls_and_head and g.meta.get("variant") != SWIN_PAPER_VARIANT:
        raise ValueError("the swin-paper convention counts the spec lowered without class token and "
                         "head: pass analysis.counted_graph(spec, graph, conv)")


def swin_flops_quirk(spec, g: Graph):
    """What Swin's official `flops()` adds to the "swin" convention, or None if `spec` is not a
    Swin-style staged model: its final-norm term is `num_features·H0·W0 // 2**num_layers`
    where the true count is `num_features·H0·W0 // 4**(num_layers-1)` (H0×W0 = patch grid)."""
    s = next((s for s in spec.stacks if s.downsample == "patch_merging" and s.final_norm), None)
    grid = g.meta.get("grid")
    if s is None or grid is None:
        return None
    layers = len(s.depths)
    num_features = s.dim * 2 ** (layers - 1)
    hw = grid[0] * grid[1]
    if isinstance(hw, int):
        return num_features * (hw // 2**layers - hw // 4 ** (layers - 1))
    return _simplify(num_features * (hw / 2**layers - hw / 4 ** (layers - 1)))


def node_params(g: Graph, n: Node) -> dict[str, tuple]:
    """Full parameter names of a node -> shapes (`blocks.0.attn.q.weight`)."""
    opdef = get(n.op)
    if opdef.params is None:
        return {}
    in_shapes = [g[i].shape for i in n.inputs]
    owner = n.a.get("weights") or n.name
    return {(f"{owner}.{k}" if k else owner): tuple(v) for k, v in opdef.params(*in_shapes, **n.a).items()}


def node_buffers(g: Graph, n: Node) -> dict[str, tuple]:
    """Full names of a node's buffers (state that is not trained: BN statistics) -> shapes."""
    opdef = get(n.op)
    if opdef.buffers is None:
        return {}
    owner = n.a.get("weights") or n.name
    return {f"{owner}.{k}": tuple(v) for k, v in opdef.buffers(*[g[i].shape for i in n.inputs], **n.a).items()}


def buffers(g: Graph) -> dict[str, tuple]:
    """All buffers by full name (they are loaded with the weights but are not parameters)."""
    return {k: v for n in g for k, v in node_buffers(g, n).items()}


def tensors(g: Graph) -> dict[str, tuple]:
    """Everything a backend must be given values for: parameters and buffers, by full name."""
    return {**parameters(g), **buffers(g)}


def frozen(g: Graph) -> set[str]:
    """Names of parameters that are not trained (`frozen` nodes: DETR's stem and layer1)."""
    return {name for n in g if n.a.get("frozen") for name in node_params(g, n)}


def parameters(g: Graph) -> dict[str, tuple]:
    """All parameters by full name, each once. Raises if a shared name has two shapes."""
    out: dict[str, tuple] = {}
    for n in g:
        for name, shape in node_params(g, n).items():
            if name in out and out[name] != shape:
                raise ValueError(f"parameter {name} has shapes {out[name]} and {shape} (at %{n.name})")
            out[name] = shape
    return out


def param_count(g: Graph, trainable: bool = False):
    """All parameters, or only those that are trained (what DETR's main.py prints)."""
    skip = frozen(g) if trainable else set()
    return _simplify(sum((numel(s) for k, s in parameters(g).items() if k not in skip), 0))


def active_param_count(g: Graph):
    """Parameters one token uses: a mixture of experts counts top_k of its E experts (its
    router and everything else in full). Equal to `param_count` for a dense model."""
    scale: dict[str, Any] = {}
    for n in g:
        if n.op == "moe":
            for name in node_params(g, n):
                scale[name] = sympy.Rational(n.a["top_k"], n.a["experts"])
    return _simplify(sum((numel(s) * scale.get(k, 1) for k, s in parameters(g).items()), 0))


def node_cost(g: Graph, n: Node, conv: Convention = Convention()):
    """The cost of one node under `conv` (MACs, or 2×MAC when conv.flops)."""
    opdef = get(n.op)
    in_shapes = [g[i].shape for i in n.inputs]
    cost = 0
    if opdef.has(MAC):
        cost = opdef.macs(n.shape, *in_shapes, **n.a)
        if conv.unmasked and n.op in ("matmul", "attention"):
            from graphspec.ops.llm import unmasked_share

            cost = unmasked_share(g, n, cost)
    elif (conv.norms and opdef.has(NORM)) or (conv.softmax and opdef.has(SOFTMAX)) or (
            conv.elementwise and opdef.has(ELEMENTWISE)):
        cost = numel(n.shape)
    return 2 * cost if conv.flops else cost


def macs(g: Graph, conv: Convention = Convention()):
    _check_variant(g, conv)
    return _simplify(sum((node_cost(g, n, conv) for n in g), 0))


def by_module(g: Graph, conv: Convention = Convention(), depth: int | None = None) -> dict[str, dict]:
    """{module path prefix: {"params": n, "macs": n}}, cut at `depth` path components."""
    _check_variant(g, conv)
    rows: dict[str, dict] = defaultdict(lambda: {"params": 0, "macs": 0})
    seen: set[str] = set()
    for n in g:
        path = _cut(n.module or _owner(n), depth)
        rows[path]["macs"] += node_cost(g, n, conv)
        for pname, shape in node_params(g, n).items():
            if pname not in seen:
                seen.add(pname)
                rows[_cut(pname.rsplit(".", 1)[0] if "." in pname else pname, depth)]["params"] += numel(shape)
    return {k: {kk: _simplify(vv) for kk, vv in v.items()} for k, v in rows.items()}


def _owner(n: Node) -> str:
    """The module a top-level node reports under: a repeated call of a shared module
    (`class_embed_3`, weights `class_embed`) counts under that module."""
    w = n.a.get("weights")
    return w if w and re.fullmatch(re.escape(w) + r"_\d+", n.name) else n.name


def by_op(g: Graph, conv: Convention = Convention()) -> dict[str, dict]:
    rows: dict[str, dict] = defaultdict(lambda: {"count": 0, "macs": 0})
    for n in g:
        rows[n.op]["count"] += 1
        rows[n.op]["macs"] += node_cost(g, n, conv)
    return {k: {"count": v["count"], "macs": _simplify(v["macs"])} for k, v in rows.items()}


def _cut(path: str, depth: int | None) -> str:
    if depth is None:
        return path
    parts = path.split(".")
    return ".".join(_take(parts, depth))


def _take(parts: list[str], depth: int) -> list[str]:
    """The first `depth` components, where a component is a name and its index (`blocks.3`)."""
    out: list[str] = []
    comps = 0
    i = 0
    while i < len(parts) and comps < depth:
        out.append(parts[i])
        if i + 1 < len(parts) and parts[i + 1].isdigit():
            out.append(parts[i + 1])
            i += 1
        comps += 1
        i += 1
    return out


def _simplify(v):
    if isinstance(v, sympy.Basic):
        v = sympy.expand(v)
        return int(v) if v.is_Integer else v
    return int(v) if isinstance(v, int) else v
