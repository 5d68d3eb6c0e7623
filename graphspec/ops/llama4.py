"""Op kinds of Llama 4's attention (Meta 2025, "The Llama 4 herd"; Hugging Face's
modeling_llama4.py): the chunked causal mask of its local layers, the L2 norm of q and k, and the
attention temperature of its global NoPE layers.

    chunked_mask   query i sees keys j ≤ i of its own chunk: ⌊j/C⌋ = ⌊i/C⌋ (HF chunked_overlay)
    l2_norm        x·rsqrt(mean(x²) + ε), no weight (HF Llama4TextL2Norm)
    attn_temperature  q × (ln(⌊(i+1)/floor⌋ + 1)·scale + 1) (HF attn_temperature_tuning;
                   Nakanishi 2025, "Scalable-Softmax Is Superior for Attention", arXiv:2501.19399)
"""

from __future__ import annotations

import numpy as np

from graphspec.ops.registry import ELEMENTWISE, NORM, ShapeError, Torch, op, th


def chunked_keep(N: int, S: int, chunk: int):
    """(N, S) bool: query i sees key j when j ≤ i and both lie in the same chunk of `chunk`
    tokens (keys aligned at the end, as sliding_keep)."""
    i = np.arange(N)[:, None] + (S - N)
    j = np.arange(S)[None, :]
    return (j <= i) & (j // chunk == i // chunk)


def chunked_keep_count(N: int, S: int, chunk: int) -> int:
    """How many (query, key) pairs `chunked_keep` keeps: C(C+1)/2 per whole chunk and r(r+1)/2
    for the last r = N mod C tokens when N = S (the `unmasked` convention's count)."""
    if N == S:
        whole, r = divmod(N, chunk)
        return whole * chunk * (chunk + 1) // 2 + r * (r + 1) // 2
    return int(chunked_keep(N, S, chunk).sum())


def temperature_scales(N: int, floor: float, scale: float):
    """(N,) f32: ln(⌊(i+1)/floor⌋ + 1)·scale + 1 for query positions i < N (HF's attn_scales)."""
    pos = np.arange(N, dtype=np.float32)
    return (np.log1p(np.floor((pos + 1.0) / np.float32(floor))) * np.float32(scale) + 1.0).astype(np.float32)


@op("chunked_mask", ELEMENTWISE)
class ChunkedMask:
    """Chunked causal mask on scores (..., N, S): query i sees keys j ≤ i with ⌊j/chunk⌋ =
    ⌊i/chunk⌋, the rest -inf (Llama 4's local layers, attention_chunk_size 8192)."""

    def shape(x, *, chunk):
        return x

    torch = Torch(call="chunked_mask({0}, {chunk})", helpers=("chunked_mask",))

    def eval(w, x, *, chunk):
        N, S = x.shape[-2:]
        keep = th.from_numpy(chunked_keep(N, S, chunk)).to(x.device)
        return x.masked_fill(~keep, float("-inf"))

    def onnx(e, x, *, chunk):
        N, S = e.shape(x)[-2:]
        return e("Where", e.const(chunked_keep(N, S, chunk), f"chunked_{N}x{S}_{chunk}"), x, e.scalar(float("-inf")))

    def relax(e, x, *, chunk):
        N, S = e.shape(x)[-2:]
        return e("where", e.const(chunked_keep(N, S, chunk)), x, e.scalar(float("-inf")))


@op("l2_norm", NORM)
class L2Norm:
    """x·rsqrt(mean(x²) + ε) over the last dim, without a weight (HF's Llama4TextL2Norm on each
    head's q and k): RMSNorm's normalisation alone."""

    defaults = {"eps": 1e-6}

    def shape(x, *, dim, eps=1e-6):
        if x[-1] != dim:
            raise ShapeError(f"l2_norm over {dim} features got {x}")
        return x

    torch = Torch(call="F.rms_norm({0}, ({dim},), eps={eps})")  # no weight: the L2 norm

    def eval(w, x, *, eps=1e-6, **_):
        return x * th.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

    def onnx(e, x, *, eps=1e-6, **_):
        ms = e("ReduceMean", e("Mul", x, x), e.ints(-1), keepdims=1)
        return e("Div", x, e("Sqrt", e("Add", ms, e.scalar(eps))))

    def relax(e, x, *, eps=1e-6, dim, **_):
        return e("nn.rms_norm", x, e.const(np.ones(dim, np.float32)), axes=[-1], epsilon=float(eps))


@op("attn_temperature", ELEMENTWISE)
class AttnTemperature:
    """q (B, h, N, d) × (ln(⌊(i+1)/floor⌋ + 1)·scale + 1) at query position i: sharper attention
    far into a long context (Llama 4's NoPE layers: floor_scale 8192, attn_scale 0.1); 1 for the
    first floor − 1 tokens."""

    def shape(x, *, floor, scale):
        if len(x) != 4:
            raise ShapeError(f"attn_temperature expects q (B, h, N, d), got {x}")
        return x

    torch = Torch(call="attn_temperature({0}, {floor}, {scale})", helpers=("attn_temperature",))

    def eval(w, x, *, floor, scale):
        pos = th.arange(x.shape[-2], device=x.device).float()
        scales = th.log1p(th.floor((pos + 1.0) / floor)) * scale + 1.0  # N
        return (x * scales.view(-1, 1)).to(x.dtype)

    def onnx(e, x, *, floor, scale):
        N = e.shape(x)[-2]
        t = temperature_scales(N, floor, scale).reshape(N, 1)
        return e("Mul", x, e.const(t, f"temperature_{N}_{floor:g}_{scale:g}"))

    def relax(e, x, *, floor, scale):
        N = e.shape(x)[-2]
        return e("multiply", x, e.const(temperature_scales(N, floor, scale).reshape(N, 1)))
