"""Op kinds of ModernBERT (Warner et al. 2024, "Smarter, Better, Faster, Longer: A Modern
Bidirectional Encoder", arXiv:2412.13663; Hugging Face's modeling_modernbert.py): the
bidirectional local window of its local layers.

    local_mask   query i sees keys j with |i − j| ≤ window // 2 (HF's
                 sliding_window_bidirectional_overlay over config.sliding_window =
                 local_attention // 2; Longformer §3.1's window w, w/2 on each side)
"""

from __future__ import annotations

import numpy as np

from graphspec.ops.registry import ELEMENTWISE, Torch, op, th


def local_keep(N: int, S: int, window: int):
    """(N, S) bool: query i sees key j when |i − j| ≤ window // 2 (keys aligned at the end, as
    sliding_keep; an encoder has N = S)."""
    i = np.arange(N)[:, None] + (S - N)
    j = np.arange(S)[None, :]
    return np.abs(i - j) <= window // 2


def local_keep_count(N, S, window):
    """How many (query, key) pairs `local_keep` keeps (the `unmasked` convention's count): for
    N = S and w = window // 2 < N, N(2w + 1) − w(w + 1), the band less its two clipped corners;
    symbolic N = S with the same formula when N > w (else every pair, N²)."""
    w = window // 2
    if isinstance(N, int) and isinstance(S, int):
        if N == S:
            return N * N if w >= N - 1 else N * (2 * w + 1) - w * (w + 1)
        return int(local_keep(N, S, window).sum())
    import sympy

    if sympy.simplify(sympy.sympify(N) - S) != 0:
        raise ValueError("symbolic local-window pairs are counted for self-attention (N = S)")
    return sympy.Piecewise((N * N, sympy.Le(N, w + 1)), (N * (2 * w + 1) - w * (w + 1), True))


@op("local_mask", ELEMENTWISE)
class LocalMask:
    """Bidirectional local window on scores (..., N, S): query i sees keys |i − j| ≤ window // 2,
    the rest -inf (ModernBERT's local layers, local_attention 128)."""

    def shape(x, *, window):
        return x

    torch = Torch(call="local_mask({0}, {window})", helpers=("local_mask",))

    def eval(w, x, *, window):
        N, S = x.shape[-2:]
        keep = th.from_numpy(local_keep(N, S, window)).to(x.device)
        return x.masked_fill(~keep, float("-inf"))

    def onnx(e, x, *, window):
        N, S = e.shape(x)[-2:]
        return e("Where", e.const(local_keep(N, S, window), f"local_{N}x{S}_{window}"), x, e.scalar(float("-inf")))

    def relax(e, x, *, window):
        N, S = e.shape(x)[-2:]
        return e("where", e.const(local_keep(N, S, window)), x, e.scalar(float("-inf")))
