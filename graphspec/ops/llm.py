"""Op kinds of today's decoder-only language models: RMSNorm, SiLU and the gated MLP's product,
rotary position embedding, grouped-query attention's shared k/v heads, sliding-window masks,
logit soft-capping and ALiBi (the mixture of experts: graphspec/ops/moe.py).

    RMSNorm      Zhang & Sennrich 2019, Eq. 4: x / √(mean(x²) + ε) · (offset + w)
    GLU          Shazeer 2020, "GLU Variants Improve Transformer", Eq. 6 (SwiGLU)
    rotary       Su et al. 2021, RoFormer §3.4.2 (halves: GPT-NeoX/Llama; pairs: GPT-J)
    repeat_kv    Ainslie et al. 2023, GQA §2: each k/v head serves heads/kv_heads query heads
    sliding_mask Beltagy et al. 2020, Longformer §3.1; Mistral 7B §2 (query i sees i-W < j ≤ i)
    softcap      Gemma 2 report §2: tanh(s / c) · c on the attention logits
    alibi        Press et al. 2022, ALiBi §3: s + m_h · (j - i)
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from graphspec.ops.registry import (
    ELEMENTWISE,
    HAS_PARAMS,
    NORM,
    SHAPE_ONLY,
    F,
    ShapeError,
    Torch,
    broadcast,
    op,
    th,
)


def rope_frequencies(theta: float, rotary_dim: int, scaling: tuple | None = None, device=None, seq_len=None):
    """(inv_freq, attention_factor): the rotary angles' inverse frequencies θ^(-2i/r), i < r/2,
    float32, rescaled for a longer context by `scaling` (graphspec/vocab/positions.py writes it):

        ("linear", factor)                                every frequency ÷ factor (Chen et al. 2023)
        ("llama3", factor, low, high, original)           long wavelengths ÷ factor, short kept, smooth between
        ("yarn", factor, original, fast, slow, af, trunc) NTK-by-parts blend, cos/sin × af (Peng et al. 2023)
        ("longrope", short, long, original, af)           frequency i ÷ short[i], or long[i] when seq_len >
                                                          original; cos/sin × af (Ding et al. 2024)

    the formulas of Hugging Face's modeling_rope_utils (eval rule; the generated code's
    `rope_frequencies` helper is the same function)."""
    r = rotary_dim
    inv = 1.0 / theta ** (th.arange(0, r, 2, device=device).float() / r)
    kind = scaling[0] if scaling else None
    if kind is None:
        return inv, 1.0
    if kind == "linear":
        return inv / scaling[1], 1.0
    if kind == "llama3":  # Llama 3.1: wavelengths above original/low ÷ factor, below original/high kept
        factor, low, high, original = scaling[1:]
        wavelen = 2 * math.pi / inv
        smooth = ((original / wavelen - low) / (high - low)).clamp(0, 1)
        return (1 - smooth) * inv / factor + smooth * inv, 1.0
    if kind == "yarn":  # YaRN §3.2: dims turning fewer than `slow` times in `original` tokens interpolate
        factor, original, fast, slow, attention_factor, truncate = scaling[1:]

        def dim_of(turns):  # the rotated dim that turns `turns` times over the original context
            return r * math.log(original / (turns * 2 * math.pi)) / (2 * math.log(theta))

        lo, hi = dim_of(fast), dim_of(slow)
        lo, hi = (math.floor(lo), math.ceil(hi)) if truncate else (lo, hi)
        lo, hi = max(lo, 0), min(hi, r - 1)
        hi = hi + 0.001 if hi == lo else hi  # HF's guard against a zero-width ramp
        ramp = ((th.arange(r // 2, device=device).float() - lo) / (hi - lo)).clamp(0, 1)
        return inv / factor * ramp + inv * (1 - ramp), attention_factor
    if kind == "longrope":  # LongRoPE: one searched factor per frequency, the long set past `original`
        short, long, original, attention_factor = scaling[1:]
        ext = th.tensor(long if seq_len is not None and seq_len > original else short, dtype=th.float32,
                        device=device)
        return 1.0 / (ext * theta ** (th.arange(0, r, 2, device=device).float() / r)), attention_factor
    raise ValueError(f"unknown rope scaling {scaling!r}")


def apply_rotary(x, theta: float, rotary_dim: int, interleaved: bool = False, scaling: tuple | None = None):
    """x (B, h, N, d) with its first `rotary_dim` dims of each head rotated by position (eval
    rule; the generated code's `apply_rotary` helper is the same function)."""
    N = x.shape[-2]
    inv_freq, attention_factor = rope_frequencies(theta, rotary_dim, scaling, x.device, N)
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
    if attention_factor != 1.0:  # YaRN, LongRoPE
        cos, sin = cos * attention_factor, sin * attention_factor
    return th.cat((rot * cos + rotated * sin, rest), -1)


def rotary_tables(N: int, d: int, rotary_dim: int, theta: float, interleaved: bool = False,
                  scaling: tuple | None = None):
    """(cos, sin, P) for the ONNX and Relax emitters: cos/sin (N, d) f32 over the whole head (1
    and 0 on the dims that do not rotate) and the (d, d) signed permutation with
    rotate(x) = x @ P on the rotated dims, so that rotary(x) = x·cos + (x @ P)·sin."""
    r = rotary_dim
    if scaling:
        inv_t, af = rope_frequencies(theta, r, scaling, seq_len=N)
        inv = inv_t.numpy()
    else:
        inv, af = (1.0 / theta ** (np.arange(0, r, 2, dtype=np.float32) / np.float32(r))).astype(np.float32), 1.0
    freqs = np.outer(np.arange(N, dtype=np.float32), inv).astype(np.float32)  # N, r/2
    emb = np.repeat(freqs, 2, -1) if interleaved else np.concatenate([freqs, freqs], -1)
    cos = np.ones((N, d), np.float32)
    sin = np.zeros((N, d), np.float32)
    cos[:, :r], sin[:, :r] = np.cos(emb) * np.float32(af), np.sin(emb) * np.float32(af)
    P = np.zeros((d, d), np.float32)
    for j in range(r // 2):
        if interleaved:  # (x0, x1) -> (-x1, x0)
            P[2 * j + 1, 2 * j], P[2 * j, 2 * j + 1] = -1.0, 1.0
        else:  # (x1, x2) -> (-x2, x1), halves
            P[j + r // 2, j], P[j, j + r // 2] = -1.0, 1.0
    return cos, sin, P


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

    # offset ≠ 0: the OffsetRMSNorm helper, w initialised at 1 − offset (Gemma's (1 + w): w = 0, HF's
    # GemmaRMSNorm), so that a freshly built model scales by 1 as nn.RMSNorm does
    torch = Torch(init=lambda a: f"nn.RMSNorm({a['dim']}, eps={a['eps']})" if a["offset"] == 0 else
                  f"OffsetRMSNorm({a['dim']}, eps={a['eps']}, offset={a['offset']})",
                  call="self.{mod}({0})", helpers=("OffsetRMSNorm",))

    def eval(w, x, *, eps=1e-6, offset=0, **_):
        return x * th.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (offset + w["weight"])

    def onnx(e, x, *, eps=1e-6, offset=0, **_):
        ms = e("ReduceMean", e("Mul", x, x), e.ints(-1), keepdims=1)
        y = e("Div", x, e("Sqrt", e("Add", ms, e.scalar(eps))))
        w = e.param("weight")
        return e("Mul", y, e("Add", w, e.scalar(offset)) if offset else w)

    def relax(e, x, *, eps=1e-6, offset=0, **_):
        w = e.param("weight")
        w = e("add", w, e.scalar(offset)) if offset else w
        return e("nn.rms_norm", x, w, axes=[-1], epsilon=float(eps))


@op("silu", ELEMENTWISE)
class Silu:
    """SiLU / swish, x·σ(x) (Elfwing et al. 2018; Ramachandran et al. 2017)."""

    def shape(x):
        return x

    torch = Torch(call="F.silu({0})")

    def eval(w, x):
        return F.silu(x)

    def onnx(e, x):
        return e("Mul", x, e("Sigmoid", x))

    def relax(e, x):
        return e("nn.silu", x)


@op("mul", ELEMENTWISE)
class Mul:
    """a * b, broadcasting (the gate of a GLU)."""

    def shape(a, b):
        return broadcast(a, b)

    torch = Torch(call="{0} * {1}")

    def eval(w, a, b):
        return a * b

    def onnx(e, a, b):
        return e("Mul", a, b)

    def relax(e, a, b):
        return e("multiply", a, b)


def _rotary_call(ops, a) -> str:
    extra = "" if a["interleaved"] == False else f", interleaved={a['interleaved']}"  # noqa: E712
    extra += "" if a["scaling"] == None else f", scaling={a['scaling']}"  # noqa: E711
    return f"apply_rotary({ops[0]}, {a['theta']}, {a['rotary_dim']}{extra})"


@op("rotary", ELEMENTWISE)
class Rotary:
    """Rotary position embedding on q or k (B, h, N, d): the first `rotary_dim` dims of each
    head rotated by angle pos·θ^(-2i/rotary_dim) (RoFormer §3.4.2); the rest pass through.
    `scaling` rescales the frequencies for a longer context (`rope_frequencies`)."""

    defaults = {"interleaved": False, "scaling": None}

    def shape(x, *, theta, rotary_dim, interleaved=False, scaling=None):
        if len(x) != 4:
            raise ShapeError(f"rotary expects (B, h, N, d), got {x}")
        if isinstance(x[-1], int) and (rotary_dim > x[-1] or rotary_dim % 2):
            raise ShapeError(f"rotary dims {rotary_dim} must be even and at most the head dim {x[-1]}")
        return x

    torch = Torch(call=_rotary_call, helpers=("apply_rotary",))

    def eval(w, x, *, theta, rotary_dim, interleaved=False, scaling=None):
        return apply_rotary(x, theta, rotary_dim, interleaved, scaling)

    # x·cos + (x @ P)·sin with constant (N, d) tables and the (d, d) rotation P: no slicing
    def onnx(e, x, *, theta, rotary_dim, interleaved=False, scaling=None):
        N, d = e.shape(x)[-2:]
        cos, sin, P = rotary_tables(N, d, rotary_dim, theta, interleaved, scaling)
        tag = f"rope_{N}x{d}_{rotary_dim}_{theta:g}{'_i' if interleaved else ''}"
        if scaling:
            tag += "_" + "_".join(f"{v:g}" if isinstance(v, float) else f"{zlib.crc32(repr(v).encode()):08x}"
                                  if isinstance(v, tuple) else str(v) for v in scaling)  # longrope's lists: a hash
        rot = e("MatMul", x, e.const(P, f"{tag}_P"))
        return e("Add", e("Mul", x, e.const(cos, f"{tag}_cos")), e("Mul", rot, e.const(sin, f"{tag}_sin")))

    def relax(e, x, *, theta, rotary_dim, interleaved=False, scaling=None):
        N, d = e.shape(x)[-2:]
        cos, sin, P = rotary_tables(N, d, rotary_dim, theta, interleaved, scaling)
        rot = e("matmul", x, e.const(P))
        return e("add", e("multiply", x, e.const(cos)), e("multiply", rot, e.const(sin)))


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

    def onnx(e, x, *, groups):
        _, kv, S, d = e.shape(x)
        y = e("Tile", e("Unsqueeze", x, e.ints(2)), e.ints(1, 1, groups, 1, 1))  # B, kv, g, S, d
        return e("Reshape", y, e.ints(0, kv * groups, S, d))

    def relax(e, x, *, groups):
        return e("repeat", x, groups, axis=1)


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

    def onnx(e, x, *, window):
        N, S = e.shape(x)[-2:]
        return e("Where", e.const(sliding_keep(N, S, window), f"sliding_{N}x{S}_{window}"), x, e.scalar(float("-inf")))

    def relax(e, x, *, window):
        N, S = e.shape(x)[-2:]
        return e("where", e.const(sliding_keep(N, S, window)), x, e.scalar(float("-inf")))


@op("softcap", ELEMENTWISE)
class Softcap:
    """tanh(s / cap) · cap on attention logits (Gemma 2 §2)."""

    def shape(x, *, cap):
        return x

    torch = Torch(call="torch.tanh({0} / {cap}) * {cap}")

    def eval(w, x, *, cap):
        return th.tanh(x / cap) * cap

    def onnx(e, x, *, cap):
        return e("Mul", e("Tanh", e("Div", x, e.scalar(cap))), e.scalar(cap))

    def relax(e, x, *, cap):
        return e("multiply", e("tanh", e("divide", x, e.scalar(cap))), e.scalar(cap))


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

    def onnx(e, x, *, heads):
        N, S = e.shape(x)[-2:]
        return e("Add", x, e.const(alibi_table(heads, N, S), f"alibi_{heads}_{N}x{S}"))

    def relax(e, x, *, heads):
        N, S = e.shape(x)[-2:]
        return e("add", x, e.const(alibi_table(heads, N, S)))


# -- counting only the (query, key) pairs a mask keeps (analysis's `unmasked` convention) ------
MASKS = ("causal_mask", "sliding_mask", "chunked_mask", "local_mask")
_THROUGH = ("scale", "add", "softcap", "alibi", "add_window_mask", "dropout")


def kept_pairs(N, S, window=None, chunk=None, local=None):
    """(query, key) pairs a causal mask (window None) or a sliding window W keeps, queries aligned
    with the last N of S keys: causal N(N+1)/2 when N = S, sliding Σᵢ min(i+1, W); a chunked
    mask of C (Llama 4) keeps C(C+1)/2 per whole chunk and r(r+1)/2 for the r = N mod C left;
    a bidirectional local window (ModernBERT) N(2w+1) − w(w+1), w = local // 2."""
    import sympy

    if local is not None:
        from graphspec.ops.modernbert import local_keep_count

        return local_keep_count(N, S, local)

    half = (lambda v: v // 2) if isinstance(N, int) and isinstance(S, int) else (lambda v: v / 2)
    if chunk is not None:
        if isinstance(N, int) and isinstance(S, int):
            from graphspec.ops.llama4 import chunked_keep_count

            return chunked_keep_count(N, S, chunk)
        if sympy.simplify(sympy.sympify(N) - S) != 0:
            raise ValueError("symbolic chunked pairs are counted for self-attention (N = S)")
        whole, r = sympy.floor(N / chunk), N - chunk * sympy.floor(N / chunk)
        return whole * chunk * (chunk + 1) / 2 + r * (r + 1) / 2
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
    if cur.op not in ("softmax", "sink_softmax"):  # sink_softmax: gpt-oss's attention sinks
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
    keeps; unchanged without a causal, sliding or chunked mask."""
    if n.op == "attention":
        w, c, loc = n.a.get("sliding"), n.a.get("chunk"), n.a.get("local")
        if not w and not c and not loc and not n.a.get("causal"):
            return macs
        N, S = g[n.inputs[0]].shape[-2], g[n.inputs[1]].shape[-2]
    else:
        m = mask_of(g, n)
        if m is None:
            return macs
        w, c = m.a.get("window"), m.a.get("chunk")
        w, loc = (None, w) if m.op == "local_mask" else (w, None)
        N, S = m.shape[-2], m.shape[-1]
    kept = kept_pairs(N, S, w, c, loc)
    if all(isinstance(v, int) for v in (macs, kept, N, S)):
        return macs * kept // (N * S)  # exact: macs is a multiple of N·S
    return macs * kept / (N * S)
