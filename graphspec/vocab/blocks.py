"""Blocks: residual sub-layers, where norms go (placement), and free composition.

A block is an ordered list of items over the residual stream x:

- a residual `[step, ...]`: x = x + steps(x) (with the stack's dropout and drop_path on the branch);
- a bare step: x = step(x) (post-norm's norm after the add).

Steps (kind `sublayer`): `norm` (the stack's norm kind; `norm(name)` names it), `attn`
(self-attention with the layer's mask), `cross_attn` (to the encoder output), `mlp`, and
`parallel` = `parallel(attn, mlp)`: both on the same input, summed (GPT-J, Phi-2). (In a YAML
flow list a call with a comma must be quoted: `[[norm, "parallel(attn, mlp)"]]`.) The placements are
sugar for lists (kind `placement`):

    pre       [[norm, attn], [norm, mlp]]                  x + f(norm(x))      GPT-2, ViT, Llama
    post      [[attn], norm, [mlp], norm]                  norm(x + f(x))      Vaswani, BERT
    parallel  [[norm, parallel(attn, mlp)]]                x + attn(n(x)) + mlp(n(x))   GPT-J, Phi-2
    sandwich  [[norm, attn, norm], [norm, mlp, norm]]      x + norm(f(norm(x)))         Gemma-2

(with `cross_attn` after `attn` in a decoder over an encoder). `block:` in a stack writes the
list itself, e.g. `block: [[norm, attn, norm], [norm, mlp, norm]]`.

Context of every step: `Layer`, one per block, built by graphspec/lower.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from graphspec.vocab import norms
from graphspec.vocab.registry import Arg, Use, construct, use


@dataclass(frozen=True)
class Names:
    """Attribute names of a block's pieces: graphspec's own (timm's and the official Swin code's),
    or Hugging Face's decoder-layer names (`names: hf`: Llama, Mistral, Mixtral, Phi)."""

    scheme: str = "graphspec"

    def __getattr__(self, role: str) -> str:
        table = _HF if self.scheme == "hf" else _OWN
        try:
            return table[role]
        except KeyError:
            raise AttributeError(role) from None


_OWN = {"q": "q", "k": "k", "v": "v", "o": "proj", "attn": "attn", "cross_attn": "cross_attn", "mlp": "mlp",
        "blocks": "blocks", "embed": "embed", "final_norm": "norm"}
_HF = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "attn": "self_attn",
       "cross_attn": "encoder_attn", "mlp": "mlp", "blocks": "layers", "embed": "embed_tokens",
       "final_norm": "norm"}
HF_NORMS = {"pre": ("input_layernorm", "post_attention_layernorm"), "parallel": ("input_layernorm",),
            "sandwich": ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                         "post_feedforward_layernorm")}


@dataclass(frozen=True)
class Layer:
    """Everything the constructs of one block read."""

    dim: Any
    heads: Any
    kv_heads: Any
    head_dim: Any
    norm: Use  # the norm kind
    mask: Use
    names: Names = Names()
    qkv_bias: bool = True
    out_bias: bool = True
    mlp_bias: bool = True
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    qk_norm: Use | None = None
    qk_norm_all: bool = False  # qk_norm over all heads' dims at once (OLMo-2), not each head's
    qkv: Use | None = None  # how self-attention gets q, k, v (graphspec/vocab/mla.py); None: three linears
    softcap: float | None = None
    sinks: bool = False  # a learned logit per head joins each softmax (gpt-oss; graphspec/ops/gpt_oss.py)
    layer_scale: float | None = None  # each residual branch ends in x · γ, γ initialised here (ls1, ls2)
    scale: float | None = None
    pos: Use | None = None  # the position scheme, when it acts inside attention
    pos_state: Any = None  # what the scheme's `stack` hook made once per stack (T5's shared bias)
    pos_q: str | None = None  # DETR: positions added to queries and keys
    pos_k: str | None = None
    memory: str | None = None
    mem_pos: str | None = None
    mlp: Use | None = None
    grid: tuple | None = None
    window: Any = None
    shift: Any = None
    index: int = 0  # the block's position in its stack (0: the first)


@dataclass(frozen=True)
class BlockAt:
    """Where a block sits, for a mask's `plan` hook."""

    grid: tuple | None
    stage: int
    block: int
    loc: Any = None


def run(b, layer: Layer, items: tuple, x: str, norm_names: tuple[str, ...] = ()) -> str:
    """Lower one block's items over the residual stream x."""
    names = iter(norm_names)
    count = [0]

    def norm_name(step: Use) -> str:
        count[0] += 1
        return step.get("name") or next(names, None) or f"norm{count[0]}"

    def step(u: Use, h: str) -> str:
        if u.name == "norm":
            name = norm_name(u)
            if layer.index == 0 and not u.get("first"):  # ModernBERT: block 0 reads the embedding's norm
                return h
            return norms.apply(b, layer.norm, h, name)
        return u.lower(b, layer, h)

    branches = 0
    for item in items:
        if isinstance(item, tuple):  # a residual branch
            h = x
            for u in item:
                h = step(u, h)
            branches += 1
            if layer.layer_scale is not None:  # timm's and DINOv2's names: ls1, ls2
                h = b.emit("layer_scale", (h,), f"ls{branches}", dim=layer.dim, init=layer.layer_scale)
            if layer.dropout:
                h = b.emit("dropout", (h,), "drop", p=layer.dropout)
            if layer.drop_path:
                h = b.emit("drop_path", (h,), "drop_path", p=round(layer.drop_path, 6))
            x = b.emit("add", (x, h), "residual")
        else:
            x = step(item, x)
    return x


def formula(items: tuple) -> str:
    """A block's items as the update of x, for a docstring: `x = x + norm(attn(x)); x = x + norm(mlp(x))`."""
    out = []
    for item in items:
        expr = "x"
        for u in item if isinstance(item, tuple) else (item,):
            expr = f"{u['a'].name}({expr}) + {u['b'].name}({expr})" if u.name == "parallel" else f"{u.name}({expr})"
        out.append(f"x = x + {expr}" if isinstance(item, tuple) else f"x = {expr}")
    return "; ".join(out)


def items_of(placement: Use, cross: bool) -> tuple:
    """The item list a placement stands for (`cross`: a cross-attention after self-attention)."""
    return placement.construct.hooks["items"](cross)


def norm_names(placement: Use, names: Names) -> tuple[str, ...]:
    return HF_NORMS.get(placement.name, ()) if names.scheme == "hf" else ()


# -- steps ----------------------------------------------------------------------------------
@construct("sublayer", "norm", Arg("name", str, None, doc="attribute name (default norm1, norm2, …)"),
           Arg("first", bool, True, doc="false: not in the stack's first block, whose input is already "
               "normalised (ModernBERT's attn_norm, after the embedding's norm)"),
           example="block: [[norm, attn], [norm, mlp]]")
def norm_step(b, use, layer, x):
    """The stack's norm kind (handled by `run`, which numbers the norms)."""
    return norms.apply(b, layer.norm, x, use.get("name") or "norm")


@construct("sublayer", "attn", example="block: [[norm, attn], [norm, mlp]]")
def attn_step(b, use, layer, x):
    """Self-attention under the layer's mask (global, causal, sliding, windows)."""
    return layer.mask.lower(b, layer, x, x, layer.names.attn)


@construct("sublayer", "cross_attn", example="block: [[norm, attn], [norm, cross_attn], [norm, mlp]]")
def cross_attn_step(b, use, layer, x):
    """Attention from the decoder to the encoder output (Vaswani §3.2.3); positions of the
    memory added to its keys (DETR). The identity when there is no encoder."""
    if layer.memory is None:
        return x
    from graphspec.vocab.attention import attend

    plain = replace(layer, window=None, shift=None)
    return attend(b, plain, x, layer.memory, layer.names.cross_attn, pos_q=layer.pos_q, pos_k=layer.mem_pos)


@construct("sublayer", "mlp", example="block: [[norm, attn], [norm, mlp]]")
def mlp_step(b, use, layer, x):
    """The stack's MLP kind (mlp, glu, moe)."""
    return layer.mlp.lower(b, layer, x, layer.names.mlp)


@construct("sublayer", "parallel", Arg("a", "sublayer", "attn"), Arg("b", "sublayer", "mlp"),
           example="block: [[norm, parallel]]")
def parallel_step(b, use, layer, x):
    """Two sub-layers on the same input, summed (GPT-J, Phi-2: attn(n(x)) + mlp(n(x)))."""
    ya = use["a"].lower(b, layer, x)
    yb = use["b"].lower(b, layer, x)
    return b.emit("add", (ya, yb), "parallel")


def _u(name: str, **args: Any) -> Use:
    return use("sublayer", name, **args)


NORM, ATTN, CROSS, MLP = _u("norm"), _u("attn"), _u("cross_attn"), _u("mlp")


def _subs(cross: bool) -> list[Use]:
    return [ATTN, CROSS, MLP] if cross else [ATTN, MLP]


@construct("placement", "pre", hooks={"items": lambda cross: tuple((NORM, f) for f in _subs(cross))},
           example="norm: pre")
def pre(b, use, layer, x):
    """x = x + f(norm(x)) (GPT-2, ViT, Swin, Llama)."""


@construct("placement", "post", hooks={"items": lambda cross: tuple(i for f in _subs(cross) for i in ((f,), NORM))},
           example="norm: post")
def post(b, use, layer, x):
    """x = norm(x + f(x)) (Vaswani §3.1, BERT, GPT)."""


@construct("placement", "parallel", hooks={"items": lambda cross: ((NORM, _u("parallel", a=ATTN, b=MLP)),)},
           example="norm: parallel")
def parallel(b, use, layer, x):
    """x = x + attn(n(x)) + mlp(n(x)), one shared norm (GPT-J, Phi-2)."""


@construct("placement", "sandwich", hooks={"items": lambda cross: tuple((NORM, f, NORM) for f in _subs(cross))},
           example="norm: sandwich")
def sandwich(b, use, layer, x):
    """x = x + norm(f(norm(x))), norms before and after each sub-layer (Gemma-2)."""
