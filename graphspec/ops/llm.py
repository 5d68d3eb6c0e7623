"""Op kinds of today's decoder-only language models: RMSNorm, SiLU and the gated MLP's product,
rotary position embedding, grouped-query attention's shared k/v heads, sliding-window masks,
logit soft-capping, ALiBi, and a mixture of experts.

    RMSNorm      Zhang & Sennrich 2019, Eq. 4: x / √(mean(x²) + ε) · (offset + w)
    GLU          Shazeer 2020, "GLU Variants Improve Transformer", Eq. 6 (SwiGLU)
    rotary       Su et al. 2021, RoFormer §3.4.2 (halves: GPT-NeoX/Llama; pairs: GPT-J)
    repeat_kv    Ainslie et al. 2023, GQA §2: each k/v head serves heads/kv_heads query heads
    sliding_mask Beltagy et al. 2020, Longformer §3.1; Mistral 7B §2 (query i sees i-W < j ≤ i)
    softcap      Gemma 2 report §2: tanh(s / c) · c on the attention logits
    alibi        Press et al. 2022, ALiBi §3: s + m_h · (j - i)
    moe          Fedus et al. 2022 / Mixtral (Jiang et al. 2024) §2.1: top-k of E experts per token
"""

from __future__ import annotations

import math

import numpy as np

from graphspec.ops.registry import (
    ELEMENTWISE,
    HAS_PARAMS,
    MAC,
    NORM,
    SHAPE_ONLY,
    F,
    ShapeError,
    Torch,
    broadcast,
    numel,
    op,
    th,
)


def apply_rotary(x, theta: float, rotary_dim: int, interleaved: bool = False):
    """x (B, h, N, d) with its first `rotary_dim` dims of each head rotated by position (eval
    rule; the generated code's `apply_rotary` helper is the same function)."""
    N = x.shape[-2]
    inv_freq = 1.0 / theta ** (th.arange(0, rotary_dim, 2, device=x.device).float() / rotary_dim)
    freqs = th.outer(th.arange(N, device=x.device).float(), inv_freq)  # N, r/2
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    if interleaved:  # GPT-J: pairs (x0, x1), (x2, x3), ...
        cos, sin = freqs.cos().repeat_interleave(2, -1), freqs.sin().repeat_interleave(2, -1)
        rotated = th.stack((-rot[..., 1::2], rot[..., 0::2]), -1).flatten(-2)
    else:  # GPT-NeoX / Llama: the two halves of the rotated dims pair up
        emb = th.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()
        x1, x2 = rot.chunk(2, -1)
        rotated = th.cat((-x2, x1), -1)
    return th.cat((rot * cos + rotated * sin, rest), -1)


def sliding_keep(N: int, S: int, window: int):
    """(N, S) bool: query i sees key j when i - window < j ≤ i (keys aligned at the end)."""
    i = np.arange(N)[:, None] + (S - N)
    j = np.arange(S)[None, :]
    return (j <= i) & (j > i - window)


def alibi_slopes(heads: int):
    """ALiBi's head slopes (Press et al. 2022, §3; the reference code's interpolation when
    `heads` is not a power of two)."""
    def pow2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return np.array(pow2(heads), np.float32)
    closest = 2 ** math.floor(math.log2(heads))
    return np.array(pow2(closest) + pow2(2 * closest)[0::2][: heads - closest], np.float32)


def alibi_table(heads: int, N: int, S: int):
    """(h, N, S) f32: m_h · (j - i)."""
    rel = (np.arange(S)[None, :] - (np.arange(N)[:, None] + S - N)).astype(np.float32)
    return alibi_slopes(heads)[:, None, None] * rel[None]


@op("rms_norm", HAS_PARAMS, NORM)
class RMSNorm:
    """RMSNorm over the last dim (Zhang & Sennrich 2019, Eq. 4): x·rsqrt(mean(x²) + ε)·(offset + w);
    offset 1 is Gemma's (1 + w) with w initialised at 0."""

    defaults = {"eps": 1e-6, "offset": 0}

    def shape(x, *, dim, eps=1e-6, offset=0, weights=None):
        if x[-1] != dim:
            raise ShapeError(f"rms_norm over {dim} features got {x}")
        return x

    def params(x, **_):
        return {"weight": (x[-1],)}

    torch = Torch(init="nn.RMSNorm({dim}, eps={eps})",
                  call=lambda ops, a: f"self.{a['mod']}({ops[0]})" if a["offset"] == 0 else
                  f"F.rms_norm({ops[0]}, ({a['dim']},), self.{a['mod']}.weight + {a['offset']}, {a['eps']})")

    def eval(w, x, *, eps=1e-6, offset=0, **_):
        return x * th.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (offset + w["weight"])


@op("silu", ELEMENTWISE)
class Silu:
    """SiLU / swish, x·σ(x) (Elfwing et al. 2018; Ramachandran et al. 2017)."""

    def shape(x):
        return x

    torch = Torch(call="F.silu({0})")

    def eval(w, x):
        return F.silu(x)


@op("mul", ELEMENTWISE)
class Mul:
    """a * b, broadcasting (the gate of a GLU)."""

    def shape(a, b):
        return broadcast(a, b)

    torch = Torch(call="{0} * {1}")

    def eval(w, a, b):
        return a * b


@op("rotary", ELEMENTWISE)
class Rotary:
    """Rotary position embedding on q or k (B, h, N, d): the first `rotary_dim` dims of each
    head rotated by angle pos·θ^(-2i/rotary_dim) (RoFormer §3.4.2); the rest pass through."""

    defaults = {"interleaved": False}

    def shape(x, *, theta, rotary_dim, interleaved=False):
        if len(x) != 4:
            raise ShapeError(f"rotary expects (B, h, N, d), got {x}")
        if isinstance(x[-1], int) and (rotary_dim > x[-1] or rotary_dim % 2):
            raise ShapeError(f"rotary dims {rotary_dim} must be even and at most the head dim {x[-1]}")
        return x

    torch = Torch(call=lambda ops, a: f"apply_rotary({ops[0]}, {a['theta']}, {a['rotary_dim']}"
                  + ("" if a["interleaved"] == False else f", interleaved={a['interleaved']}") + ")",  # noqa: E712
                  helpers=("apply_rotary",))

    def eval(w, x, *, theta, rotary_dim, interleaved=False):
        return apply_rotary(x, theta, rotary_dim, interleaved)


@op("repeat_kv", SHAPE_ONLY)
class RepeatKv:
    """Grouped-query attention (GQA §2): k or v (B, kv, S, d) -> (B, kv·groups, S, d), each
    k/v head repeated for the `groups` query heads that share it (HF's repeat_kv)."""

    def shape(x, *, groups):
        B, h, S, d = x
        return (B, h * groups, S, d)

    torch = Torch(call="{0}.repeat_interleave({groups}, dim=1)", comment="B, h, S, d")

    def eval(w, x, *, groups):
        return x.repeat_interleave(groups, dim=1)


@op("sliding_mask", ELEMENTWISE)
class SlidingMask:
    """Causal sliding window on scores (..., N, S): query i sees keys i - window < j ≤ i, the
    rest -inf (Mistral 7B §2)."""

    def shape(x, *, window):
        return x

    torch = Torch(call="sliding_mask({0}, {window})", helpers=("sliding_mask",))

    def eval(w, x, *, window):
        N, S = x.shape[-2:]
        keep = th.from_numpy(sliding_keep(N, S, window)).to(x.device)
        return x.masked_fill(~keep, float("-inf"))


@op("softcap", ELEMENTWISE)
class Softcap:
    """tanh(s / cap) · cap on attention logits (Gemma 2 §2)."""

    def shape(x, *, cap):
        return x

    torch = Torch(call="torch.tanh({0} / {cap}) * {cap}")

    def eval(w, x, *, cap):
        return th.tanh(x / cap) * cap


@op("alibi", ELEMENTWISE)
class Alibi:
    """ALiBi (Press et al. 2022, §3): scores (B, h, N, S) + m_h · (j - i), fixed head slopes."""

    def shape(x, *, heads):
        if x[-3] != heads:
            raise ShapeError(f"alibi over {heads} heads got scores {x}")
        return x

    torch = Torch(call="alibi({0})", helpers=("alibi",))

    def eval(w, x, *, heads):
        return x + th.from_numpy(alibi_table(heads, x.shape[-2], x.shape[-1])).to(x.device)


@op("moe", HAS_PARAMS, MAC)
class Moe:
    """Mixture of experts (Mixtral §2.1): x (..., d) and router logits (..., E) -> (..., d).
    Each token goes to the `top_k` experts of highest softmax probability, weighted by those
    probabilities (renormalised to sum 1 when `normalize`). A gated expert is
    down(act(gate(x)) ⊙ up(x)), its gate and up stacked as HF's `gate_up_proj` (E, 2·ff, d);
    an ungated one is down(act(up(x))).

    MACs per token: top_k experts (3·d·ff gated, 2·d·ff not); the router is its own `linear`.
    NB: what a token does not use is not counted (`params` counts every expert; analysis's
    `active_param_count` counts top_k of them)."""

    defaults = {"gated": True, "normalize": True, "act": "silu"}

    def shape(x, logits, *, experts, top_k, dim, d_ff, gated=True, normalize=True, act="silu"):
        if logits[-1] != experts or top_k > experts:
            raise ShapeError(f"moe: {experts} experts, top {top_k}, router logits {logits}")
        return x

    def params(x, logits, *, experts, d_ff, gated=True, **_):
        d = x[-1]
        up = {"gate_up_proj": (experts, 2 * d_ff, d)} if gated else {"up_proj": (experts, d_ff, d)}
        return {**up, "down_proj": (experts, d, d_ff)}

    def macs(out, x, logits, *, top_k, d_ff, gated=True, **_):
        return numel(x[:-1]) * top_k * (3 if gated else 2) * x[-1] * d_ff  # NB: unrouted experts not counted

    torch = Torch(init="Experts({experts}, {top_k}, {dim}, {d_ff}, act={act}, gated={gated}, normalize={normalize})",
                  call="self.{mod}({0}, {1})", helpers=("Experts",))

    def eval(w, x, logits, *, experts, top_k, dim, d_ff, gated=True, normalize=True, act="silu"):
        probs = logits.float().softmax(-1)
        weight, index = probs.topk(top_k, dim=-1)  # ..., k
        if normalize:
            weight = weight / weight.sum(-1, keepdim=True)
        fn = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu,
              "gelu_tanh": lambda t: F.gelu(t, approximate="tanh")}[act]
        out = th.zeros_like(x)
        for e in range(experts):
            hit = (index == e)  # ..., k
            if not bool(hit.any()):
                continue
            if gated:
                g, u = F.linear(x, w["gate_up_proj"][e]).chunk(2, -1)
                h = fn(g) * u
            else:
                h = fn(F.linear(x, w["up_proj"][e]))
            y = F.linear(h, w["down_proj"][e])
            out = out + y * (weight * hit).sum(-1, keepdim=True).to(x.dtype)
        return out


# -- counting only the (query, key) pairs a mask keeps (analysis's `unmasked` convention) ------
MASKS = ("causal_mask", "sliding_mask")
_THROUGH = ("scale", "add", "softcap", "alibi", "add_window_mask", "dropout")


def kept_pairs(N, S, window=None):
    """(query, key) pairs a causal mask (window None) or a sliding window W keeps, queries aligned
    with the last N of S keys: causal N(N+1)/2 when N = S, sliding Σᵢ min(i+1, W)."""
    import sympy

    half = (lambda v: v // 2) if isinstance(N, int) and isinstance(S, int) else (lambda v: v / 2)
    if window is None:
        return half(N * (N + 1)) + N * (S - N)
    W = window
    if isinstance(N, int) and isinstance(S, int):
        return sum(min(i + 1 + S - N, W) for i in range(N)) if N != S else (
            half(N * (N + 1)) if N <= W else half(W * (W + 1)) + (N - W) * W)
    if sympy.simplify(sympy.sympify(N) - S) != 0:
        raise ValueError("symbolic sliding-window pairs are counted for self-attention (N = S)")
    return sympy.Piecewise((N * (N + 1) / 2, sympy.Le(N, W)), (W * (W + 1) // 2 + (N - W) * W, True))


def mask_of(g, n):
    """The causal or sliding mask node on the scores of attention matmul `n` (QKᵀ: the mask
    follows it; ·V: its probabilities come from masked scores), or None."""
    cur = n
    for _ in range(16):  # QKᵀ: forward through the score edits to the mask
        users = g.users(cur.name)
        if len(users) != 1:
            break
        cur = users[0]
        if cur.op in MASKS:
            return cur
        if cur.op not in _THROUGH:
            break
    cur = g[n.inputs[0]]  # ·V: back from the probabilities
    while cur.op == "dropout":
        cur = g[cur.inputs[0]]
    if cur.op != "softmax":
        return None
    cur = g[cur.inputs[0]]
    for _ in range(16):
        if cur.op in MASKS:
            return cur
        if cur.op not in _THROUGH or not cur.inputs:
            return None
        cur = g[cur.inputs[0]]
    return None


def unmasked_share(g, n, macs):
    """`macs` of attention matmul `n` (or a fused `attention`) scaled to the pairs its mask
    keeps; unchanged without a causal or sliding mask."""
    if n.op == "attention":
        w = n.a.get("sliding")
        if not w and not n.a.get("causal"):
            return macs
        N, S = g[n.inputs[0]].shape[-2], g[n.inputs[1]].shape[-2]
    else:
        m = mask_of(g, n)
        if m is None:
            return macs
        w = m.a.get("window")
        N, S = m.shape[-2], m.shape[-1]
    kept = kept_pairs(N, S, w)
    if all(isinstance(v, int) for v in (macs, kept, N, S)):
        return macs * kept // (N * S)  # exact: macs is a multiple of N·S
    return macs * kept / (N * S)
