"""A small reference interpreter of the IR in torch (inference mode: dropout is the identity).

    g = graphspec.load("swin_t", ["img_size=64", "M=4", "C=48"]).graph
    params = init_params(g, seed=0)
    out = run(g, random_inputs(g), params)       # {output name: tensor}

Each op executes by the `eval` rule declared beside its other rules in graphspec/ops/*.py:
`eval(w, *operands, **attrs)`, where `w` maps the op's local parameter names (`weight`,
`relative_position_bias_table`, `""` for a bare `parameter`) to tensors. The interpreter checks
every result against the shape recorded in the IR, so it doubles as a shape check of the rules.

Parameters and buffers (BatchNorm statistics, analysis.buffers) are keyed by their full names
(analysis.parameters). `init_params` draws each tensor from a generator seeded by its name, so two graphs that share a name share its value:
that is what lets a test compare a model before and after a pass. A pass that renames
parameters (fuse_qkv: `attn.q/k/v.weight` -> `attn.qkv.weight`) declares it, and
`rename_params` applies the declaration: the new tensor is the old ones concatenated along
dim 0, in order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import sympy
import torch

from graphspec.analysis import buffers, node_params, parameters
from graphspec.ir import Graph, Node
from graphspec.ops import NORM, get


class InterpretError(RuntimeError):
    """An op failed or produced a tensor of the wrong shape; names the node."""


def local_params(g: Graph, n: Node) -> dict[str, str]:
    """{local name: full name} of one node's parameters and buffers (`weight` ->
    `blocks.0.attn.q.weight`, `running_var` -> `backbone.bn1.running_var`)."""
    opdef = get(n.op)
    owner = n.a.get("weights") or n.name
    shapes: dict = {}
    for facet in (opdef.params, opdef.buffers):
        if facet is not None:
            shapes.update(facet(*(g[i].shape for i in n.inputs), **n.a))
    return {k: (f"{owner}.{k}" if k else owner) for k in shapes}


def init_params(g: Graph, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random parameters and buffers by full name, deterministic per (name, seed).

    Matrices ~ N(0, 1/fan_in) so that activations stay O(1) through deep stacks; vectors named
    `*.weight` (norm scales, frozen BN's too) ~ 1 + N(0, 0.1²), `*.running_var` ~ U(0.5, 1.5),
    other vectors (biases, `*.running_mean`) ~ N(0, 0.1²). A norm that scales by (offset + w)
    (Gemma's rms_norm(offset=1)) draws w ~ 1 - offset + N(0, 0.1²): centred on the generated
    module's init (w = 0, as HF's Gemma2RMSNorm), so its scale is ~1 like every other norm's.
    """
    offsets = _norm_offsets(g)
    out = {}
    for name, shape in {**parameters(g), **buffers(g)}.items():
        dims = [_int(d, name) for d in shape]
        gen = torch.Generator().manual_seed((zlib.crc32(name.encode()) ^ seed) & 0x7FFFFFFF)
        if name.endswith(".running_var"):
            out[name] = 0.5 + torch.rand(dims, generator=gen)
            continue
        t = torch.randn(dims, generator=gen)
        if len(dims) >= 2:
            t = t / math.sqrt(math.prod(dims[1:]))
        elif name.endswith(".weight"):
            t = 1 - offsets.get(name, 0) + 0.1 * t
        else:
            t = 0.1 * t
        out[name] = t
    return out


def _norm_offsets(g: Graph) -> dict[str, float]:
    """{full name of the scale: offset} of the norms that scale by (offset + w)."""
    return {name: n.a["offset"] for n in g if NORM in get(n.op).props and n.a.get("offset")
            for name in node_params(g, n) if name.endswith(".weight")}


def random_inputs(g: Graph, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random graph inputs: images ~ N(0, 1); token ids uniform below the smallest vocabulary
    of the embeddings that read them."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for n in g.inputs:
        dims = [_int(d, n.name) for d in n.shape]
        if n.dtype == "i64":
            vocab = min((u.a["num"] for u in g.users(n.name) if u.op == "embedding"), default=2)
            out[n.name] = torch.randint(0, vocab, dims, generator=gen)
        else:
            out[n.name] = torch.randn(dims, generator=gen)
    return out


def rename_params(params: Mapping[str, torch.Tensor], renames: Mapping[str, tuple[str, ...]]) -> dict:
    """Apply a pass's declared renames {new: (old, ...)}: new = cat(old..., dim=0)."""
    out = dict(params)
    for new, olds in renames.items():
        out[new] = torch.cat([out.pop(o) for o in olds], dim=0)
    return out


@torch.no_grad()
def run(g: Graph, inputs: Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]) -> dict:
    """Execute `g`; returns {output name: tensor}. Intermediate values are freed after their
    last use."""
    order = list(g)
    last_use = {}
    for idx, n in enumerate(order):
        for i in n.inputs:
            last_use[i] = idx
    keep = set(g.outputs)
    env: dict[str, torch.Tensor] = {}
    for idx, n in enumerate(order):
        opdef = get(n.op)
        if opdef.eval is None:
            raise InterpretError(f"%{n.name}: op {n.op!r} has no eval rule (add one in graphspec/ops)")
        if n.op == "input":
            if n.name not in inputs:
                raise InterpretError(f"%{n.name}: no value fed for this graph input")
            w = {"": inputs[n.name]}
        else:
            try:
                w = {k: params[full] for k, full in local_params(g, n).items()}
            except KeyError as e:
                raise InterpretError(f"%{n.name}: parameter or buffer {e.args[0]} missing") from e
        try:
            y = opdef.eval(w, *(env[i] for i in n.inputs), **n.a)
        except Exception as e:
            raise InterpretError(f"%{n.name} = {n.op}(...) failed: {e}") from e
        want = [_int(d, n.name) for d in n.shape]
        if list(y.shape) != want:
            raise InterpretError(f"%{n.name} = {n.op}(...): result has shape {tuple(y.shape)}, "
                                 f"the IR says {tuple(want)}")
        env[n.name] = y
        for i in dict.fromkeys(n.inputs):
            if last_use.get(i) == idx and i not in keep:
                del env[i]
    return {o: env[o] for o in g.outputs}


def _int(d, where: str) -> int:
    if isinstance(d, sympy.Basic) and not d.is_Integer:
        raise InterpretError(f"%{where}: symbolic dim {d}; lower the spec with concrete sizes")
    return int(d)
