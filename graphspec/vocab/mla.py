"""How a block's attention gets its q, k and v (`qkv: mla(...)`): DeepSeek's multi-head latent
attention (DeepSeek-AI 2024, "DeepSeek-V2", arXiv:2405.04434, §2.1, Eq. 9-19).

Without `qkv:` the attention projects q, k and v with three linears (graphspec/vocab/attention.py,
`attend`). With `qkv: mla(...)` keys and values come from one low-rank latent per token, and
the position information from a separate, decoupled RoPE part:

    c_kv | k_pe = kv_a_proj_with_mqa(x)          dim -> kv_rank + rope_dim       (Eq. 9, 14)
    k_nope | v  = kv_b_proj(kv_a_layernorm(c_kv)) kv_rank -> heads·(nope_dim + v_dim) (Eq. 10-11)
    q           = q_proj(x)                       dim -> heads·(nope_dim + rope_dim), or with q_rank
                = q_b_proj(q_a_layernorm(q_a_proj(x)))   the low-rank query of Eq. 12-13
    q_nope | q_pe = q per head;  q_pe, k_pe rotated by the model's rope;  k_pe is ONE head shared
                    by all heads (Eq. 14)
    q = [q_nope, q_pe], k = [k_nope, k_pe]        nope_dim + rope_dim per head   (Eq. 15-16)

The rest is `attend`'s: the mask, softmax(q kᵀ / √(nope_dim + rope_dim)) (Eq. 17-18; under
`rope(scaling=yarn(..., mscale_all_dim=m))` times YaRN's mscale(factor, m)², as DeepSeek's code
and Hugging Face's yarn_apply_mscale do), ·v with v_dim per head, and o_proj heads·v_dim -> dim
(Eq. 19). The pieces keep the names of DeepSeek's
code and Hugging Face's DeepseekV2Attention (q_a_proj, kv_a_proj_with_mqa, kv_b_proj, ...), so its
state dict loads as it is; q_proj and o_proj follow the stack's `names:`.

Context of the lowering: the block's `Layer` (graphspec/vocab/blocks.py); it returns the q, k
and v heads (B, h, N, ·) that `attend` scores, and the scale of the scores.
"""

from __future__ import annotations

from dataclasses import replace

from graphspec.vocab import norms
from graphspec.vocab.positions import yarn_mscale
from graphspec.vocab.registry import Arg, construct


def _check(a):
    out = []
    if a["rope_dim"] % 2:
        out.append(("rope_dim", f"rope_dim {a['rope_dim']} is odd: RoPE rotates pairs of dims",
                    "use an even rope_dim (DeepSeek-V2: 64)"))
    return out


def softmax_scale(layer, qk_dim: int) -> float:
    """1/√(nope_dim + rope_dim), times mscale(factor, mscale_all_dim)² when the model's RoPE is
    YaRN with DeepSeek's mscale_all_dim (DeepSeek-V2's released config: (0.1·0.707·ln 40 + 1)²)."""
    scale = qk_dim ** -0.5
    pos = layer.pos
    yarn = pos.get("scaling") if pos is not None and pos.name == "rope" else None
    if yarn is not None and yarn.name == "yarn" and yarn["mscale_all_dim"]:
        scale *= yarn_mscale(float(yarn["factor"]), yarn["mscale_all_dim"]) ** 2
    return scale


@construct("qkv", "mla", Arg("kv_rank", int, minimum=0, exclusive=True, doc="width of the k/v latent c_kv (kv_lora_rank)"),
           Arg("rope_dim", int, minimum=0, exclusive=True, doc="rotated dims per head, k's shared by all heads (qk_rope_head_dim)"),
           Arg("nope_dim", int, minimum=0, exclusive=True, doc="dims per head without positions (qk_nope_head_dim)"),
           Arg("v_dim", int, minimum=0, exclusive=True, doc="value dims per head (v_head_dim)"),
           Arg("q_rank", int, None, minimum=0, exclusive=True,
               doc="width of the query latent (q_lora_rank); none: a plain q_proj (DeepSeek-V2-Lite)"),
           Arg("norm", "norm", "rms_norm", doc="the latents' norm (DeepSeek: RMSNorm, eps 1e-6)"),
           check=_check, module="LatentAttention", attr="self_attn",
           doc_class="Multi-head latent attention (DeepSeek-V2 §2.1): keys and values from one low-rank latent "
                     "per token, a decoupled RoPE key shared by all heads.",
           example="qkv: mla(kv_rank=16, rope_dim=4, nope_dim=8, v_dim=8)")
def mla(b, use, layer, x):
    """Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434, §2.1, Eq. 9-19): k and v
    up-projected from a kv_rank-wide latent of each token (what an inference cache keeps), q
    directly or through a q_rank latent, and a decoupled rope_dim part per head whose key is one
    head shared by all (RoPE does not commute with the up-projection). Scores over
    nope_dim + rope_dim dims, values v_dim wide."""
    h, dim, n = layer.heads, layer.dim, layer.names
    nope, rope, vd, rank = use["nope_dim"], use["rope_dim"], use["v_dim"], use["kv_rank"]
    qk = nope + rope
    if use["q_rank"] is None:
        q = b.emit("linear", (x,), n.q, out_features=h * qk, bias=False, in_features=dim)
    else:
        q = b.emit("linear", (x,), "q_a_proj", out_features=use["q_rank"], bias=layer.qkv_bias, in_features=dim)
        q = norms.apply(b, use["norm"], q, "q_a_layernorm")
        q = b.emit("linear", (q,), "q_b_proj", out_features=h * qk, bias=False, in_features=use["q_rank"])
    q = b.emit("split_heads", (q,), "q_heads", heads=h)  # B, h, N, nope + rope
    q_nope = b.emit("split", (q,), "q_nope", sizes=(nope, rope), index=0)
    q_pe = b.emit("split", (q,), "q_pe", sizes=(nope, rope), index=1)
    kv = b.emit("linear", (x,), "kv_a_proj_with_mqa", out_features=rank + rope, bias=layer.qkv_bias, in_features=dim)
    latent = b.emit("split", (kv,), "compressed_kv", sizes=(rank, rope), index=0)  # B, N, kv_rank
    k_pe = b.emit("split", (kv,), "k_pe", sizes=(rank, rope), index=1)  # B, N, rope
    latent = norms.apply(b, use["norm"], latent, "kv_a_layernorm")
    kv = b.emit("linear", (latent,), "kv_b_proj", out_features=h * (nope + vd), bias=False, in_features=rank)
    kv = b.emit("split_heads", (kv,), "kv", heads=h)  # B, h, S, nope + v
    k_nope = b.emit("split", (kv,), "k_nope", sizes=(nope, vd), index=0)
    v = b.emit("split", (kv,), "v_heads", sizes=(nope, vd), index=1)
    k_pe = b.emit("split_heads", (k_pe,), "k_pe", heads=1)  # B, 1, S, rope: one key for all heads
    pos = layer.pos
    if pos is not None and pos.hook("qk"):  # RoPE on the decoupled dims only
        q_pe, k_pe = pos.hook("qk")(b, pos, replace(layer, head_dim=rope), q_pe, k_pe)
    k_pe = b.emit("repeat_kv", (k_pe,), "k_pe", groups=h)  # B, h, S, rope
    q = b.emit("concat", (q_nope, q_pe), "q", dim=-1)  # B, h, N, nope + rope
    k = b.emit("concat", (k_nope, k_pe), "k", dim=-1)
    return q, k, v, softmax_scale(layer, qk)
