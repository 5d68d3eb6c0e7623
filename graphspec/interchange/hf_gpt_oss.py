"""gpt-oss configs (model_type gpt_oss; OpenAI 2025, arXiv:2508.10925) both ways: `import_gpt_oss`
reads one into a spec, `gpt_oss_config` writes a spec's config.

A Llama-like decoder (RMSNorm, pre-norm, GQA with head_dim, YaRN RoPE) with what Hugging Face's
GptOss classes (transformers 5) add, each a graphspec construct:

    attention sinks (GptOssAttention.sinks, always)           -> sinks: true
    layer_types sliding / full, sliding_window                -> pattern(sliding(W), causal)
    attention_bias (q, k, v and o together)                   -> qkv_bias, out_bias
    num_local_experts, num_experts_per_tok, intermediate_size,
    swiglu_alpha, swiglu_limit (GptOssExperts, always biased) -> moe(E, k, expert=clamped_swiglu(d_ff,
                                                                 alpha=, limit=), router=topk_softmax)

GptOss reads neither `hidden_act` (its experts are the clamped SwiGLU whatever it says) nor
OpenAI's own `experts_per_token` and `initial_context_length` (num_experts_per_tok and
rope_parameters' original_max_position_embeddings are what it runs): they are read and left
out, as HF leaves them. A released config's quantization_config (MXFP4 experts) is how the
weights are stored, not another model (ignored, as for every family).
"""

from __future__ import annotations

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _head, _seq, num
from graphspec.interchange.hf_import_llm import _layer_masks, _rope, _rope_text, task_heads


def import_gpt_oss(r: Reader, s: Spec) -> None:
    s.names_hf = True
    d, h, L = r.int("hidden_size"), r.int("num_attention_heads"), r.int("num_hidden_layers")
    kv = r.int("num_key_value_heads", optional=True) or h
    hd = r.int("head_dim", optional=True) or d // h
    if h % kv:
        r.error("num_key_value_heads", f"option num_key_value_heads = {kv} does not divide num_attention_heads = {h}")
    experts = r.int("num_local_experts")
    if "num_experts" in r.data and r.int("num_experts") != experts:  # GptOssConfig's alias of num_local_experts
        r.error("num_experts", f"option num_experts = {show(r.data['num_experts'])} contradicts num_local_experts "
                f"= {experts}", "keep one of them")
    top_k = r.int("num_experts_per_tok")
    if top_k > experts:
        r.error("num_experts_per_tok", f"option num_experts_per_tok = {top_k} exceeds the {experts} experts",
                f"use at most {experts}")
    r.raw("experts_per_token"), r.raw("initial_context_length"), r.raw("hidden_act")  # not read by GptOss (above)
    r.raw("router_aux_loss_coef"), r.raw("output_router_logits")  # the load-balancing loss: training only
    alpha, limit = r.float("swiglu_alpha", minimum=0), r.float("swiglu_limit", minimum=0)
    for key, v in (("swiglu_alpha", alpha), ("swiglu_limit", limit)):
        if v is not None and v <= 0:
            r.error(key, f"option {key} = {show(v)} must be a number > 0", "gpt-oss: swiglu_alpha 1.702, swiglu_limit 7.0")
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", L), s.var("h", h), s.var("kv", kv)
    s.var("hd", hd), s.var("experts", experts), s.var("top_k", top_k), s.var("d_ff", r.int("intermediate_size"))
    s.var("alpha", alpha), s.var("limit", limit)
    ctx = r.int("max_position_embeddings")
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    theta, _, scaling = _rope(r, partial=False)
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=d, pos={_rope_text(theta, 1.0, scaling, ctx)})"
    f: list[tuple[str, object]] = [("dim", "d"), ("heads", "h"), ("kv_heads", "kv"), ("head_dim", "hd")]
    masks = _layer_masks(r)
    if masks is not None:
        f.append(("attention", masks))
    f += [("sinks", True), ("norm", f"rms_norm({num(r.float('rms_norm_eps'))})"),
          ("mlp", "moe(experts, top_k, expert=clamped_swiglu(d_ff, alpha=alpha, limit=limit), router=topk_softmax)")]
    if not r.bool("attention_bias", True):  # the experts and the router keep theirs
        f += [("qkv_bias", False), ("out_bias", False)]
    if r.float("attention_dropout", default=0):
        f.append(("attn_dropout", r.float("attention_dropout")))
    s.stacks.append(("decoder×L", f + [("final_norm", True)]))
    s.head = _head(r, "gpt_oss", {"GptOssForCausalLM": f"lm(tied={num(r.bool('tie_word_embeddings', False))})",
                                  "GptOssModel": "none", **task_heads(r, "GptOssForCausalLM")}, "GptOssForCausalLM")


class GptOssExportError(ValueError):
    """The spec is not a gpt-oss model (hf_export turns it into its ExportError)."""


def gpt_oss_config(spec, decoder) -> dict:
    """GptOssConfig's keys for a spec with `sinks: true`; `decoder` is hf_export's `_decoder`
    (the keys every HF decoder config shares)."""
    st = spec.stacks[0]
    moe = st.mlp
    mlps = set(map(str, st.layer_mlps)) if st.layer_mlps else {str(moe)}
    if moe is None or moe.name != "moe" or len(mlps) > 1 or moe["expert"].name != "clamped_swiglu" \
            or moe["router"].name != "topk_softmax" or not moe["router"]["bias"] or moe["shared"] or not st.mlp_bias:
        raise GptOssExportError(f"{spec.name}: a gpt-oss config's every MLP is moe(E, k, expert=clamped_swiglu(...), "
                                "router=topk_softmax) with biased experts, no shared ones; this spec's is "
                                f"{', '.join(sorted(mlps))}" + ("" if st.mlp_bias else " with mlp_bias false"))
    if st.qkv_bias != st.out_bias:
        raise GptOssExportError(f"{spec.name}: GptOss's attention_bias is q, k, v and o's together; this spec has "
                                f"qkv_bias {st.qkv_bias}, out_bias {st.out_bias}")
    masks = st.layer_masks()
    windows = {m.get("window") for m in masks if m.name == "sliding"}
    if len(windows) > 1 or any(m.name not in ("sliding", "causal") or m.get("pos") is not None for m in masks):
        raise GptOssExportError(f"{spec.name}: a gpt-oss config holds causal layers and sliding ones of one window; "
                                f"this spec's masks are {sorted({str(m) for m in masks})}")
    ex = moe["expert"]
    cfg = decoder(spec, "GptOssForCausalLM", "GptOssModel")
    cfg.update(hidden_act="silu", num_key_value_heads=st.kv_heads or st.heads[0],
               head_dim=st.head_dim or st.dim // st.heads[0], intermediate_size=int(ex["d_ff"]),
               num_local_experts=moe["experts"], num_experts_per_tok=moe["top_k"], rms_norm_eps=float(
                   st.norm_kind.get("eps")), attention_bias=bool(st.qkv_bias), swiglu_alpha=float(ex["alpha"]),
               swiglu_limit=float(ex["limit"]), sliding_window=windows.pop() if windows else None,
               layer_types=["sliding_attention" if m.name == "sliding" else "full_attention" for m in masks])
    return cfg
