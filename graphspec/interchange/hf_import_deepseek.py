"""The importer of DeepSeek-V2 and DeepSeek-V3 configs (model_type deepseek_v2, deepseek_v3).

Both are a Llama-like decoder with multi-head latent attention (`qkv: mla(...)`,
graphspec/vocab/mla.py) and DeepSeekMoE after `first_k_dense_replace` dense layers
(`mlp: first(k, glu(intermediate_size, act), moe(...))`). What differs is data, as Hugging Face's
DeepseekV2 / DeepseekV3 classes read it (transformers 5):

    q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim -> mla(...)
    n_routed_experts, num_experts_per_tok, n_shared_experts, moe_intermediate_size -> moe(...)
    V2: softmax scores, topk_method greedy | group_limited_greedy (n_group, topk_group: the best
        expert ranks a group), routed_scaling_factor; never renormalised (DeepseekV2TopkRouter
        has no norm_topk_prob) -> router=softmax(groups, topk_groups, scale), normalize=false
    V3: sigmoid scores with e_score_correction_bias, n_group groups ranked by their best two,
        topk_group of them, norm_topk_prob, routed_scaling_factor (topk_method noaux_tc)
        -> router=sigmoid(groups, topk_groups, scale), normalize=norm_topk_prob
    RoPE: V2 rotates interleaved pairs (as complex numbers) -> rope(interleaved=true); V3 with
        rope_interleave true the same (it de-interleaves q and k alike: equal scores), false
        rotates halves -> rope(); YaRN's mscale_all_dim scales MLA's softmax by mscale² (mla.py).

The keys of the original DeepSeek code that Hugging Face's classes do not read are checked
against what those classes compute: scoring_func (softmax / sigmoid), topk_method, moe_layer_freq
(1: every layer after the dense ones sparse). Anything else is an exit-2 error naming the option.
"""

from __future__ import annotations

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _head, _seq, num
from graphspec.interchange.hf_import_llm import _rope, _rope_text, task_heads

CLASSES = {"deepseek_v2": "DeepseekV2", "deepseek_v3": "DeepseekV3"}


def _deepseek(r: Reader, s: Spec) -> None:
    mt = r.data["model_type"]
    v3 = mt == "deepseek_v3"
    s.names_hf = True
    d, h, L = r.int("hidden_size"), r.int("num_attention_heads"), r.int("num_hidden_layers")
    kv_heads = r.int("num_key_value_heads", optional=True)
    if kv_heads not in (None, h):  # HF repeats MLA's h heads kv-groups times more: not a model
        r.error("num_key_value_heads", f"option num_key_value_heads = {kv_heads} is not expressible in graphspec: "
                f"multi-head latent attention has one key and value per head ({h})",
                f"use num_key_value_heads {h} (= num_attention_heads) or null")
    r.raw("head_dim"), r.raw("qk_head_dim")  # derived: qk_rope_head_dim, nope + rope
    r.raw("pretraining_tp")  # a slicing of the same matmuls
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", L), s.var("h", h)
    q_rank = r.int("q_lora_rank", optional=True)
    mla = f"mla(kv_rank={r.int('kv_lora_rank')}, rope_dim={r.int('qk_rope_head_dim')}, " \
        f"nope_dim={r.int('qk_nope_head_dim')}, v_dim={r.int('v_head_dim')}" + \
        (f", q_rank={q_rank}" if q_rank is not None else "") + ")"
    act = _act(r, "hidden_act")
    s.var("d_ff", r.int("intermediate_size"))
    dense, moe = _moe(r, s, mt, act, L)
    ctx = r.int("max_position_embeddings")
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    theta, _, scaling = _rope(r, partial=False)
    interleaved = r.bool("rope_interleave", True) if v3 else True
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=d, pos={_rope_text(theta, 1.0, scaling, ctx, interleaved)})"
    f: list[tuple[str, object]] = [("dim", "d"), ("heads", "h"), ("qkv", mla),
                                   ("norm", f"rms_norm({num(r.float('rms_norm_eps'))})")]
    if dense == 0:
        f.append(("mlp", moe))
    elif dense >= L:  # every layer dense: the routed experts' settings build nothing
        f.append(("mlp", f"glu(d_ff, {act})"))
    else:
        f.append(("mlp", f"first(dense, glu(d_ff, {act}), {moe})"))
    bias = r.bool("attention_bias")  # q_a_proj (or none: q_proj has none), kv_a_proj_with_mqa, o_proj
    if not v3 and r.bool("mlp_bias"):
        r.error("mlp_bias", "option mlp_bias = true is not expressible in graphspec: DeepseekV2's dense and shared "
                "MLPs take biases, its routed experts none, and graphspec's mlp_bias is every MLP's",
                "use false (DeepSeek-V2's released models do)")
    f += [("qkv_bias", True), ("out_bias", True), ("mlp_bias", False)] if bias else [("bias", False)]
    if r.float("attention_dropout", default=0):
        f.append(("attn_dropout", r.float("attention_dropout")))
    s.stacks.append(("decoder×L", f + [("final_norm", True)]))
    if v3:
        mtp = r.int("num_nextn_predict_layers", minimum=0, default=0)
        if mtp:
            s.comment.append(f"num_nextn_predict_layers {mtp}: the multi-token-prediction module is not built "
                             "(nor by DeepseekV3ForCausalLM).")
    cls = f"{CLASSES[mt]}ForCausalLM"
    s.head = _head(r, mt, {cls: f"lm(tied={num(r.bool('tie_word_embeddings', False))})",
                           f"{CLASSES[mt]}Model": "none", **task_heads(r, cls)}, cls)


def _moe(r: Reader, s: Spec, mt: str, act: str, L: int) -> tuple[int, str]:
    """(first_k_dense_replace, the MoE layers' `moe(...)`, with its vars in `s`)."""
    v3 = mt == "deepseek_v3"
    dense = r.int("first_k_dense_replace", minimum=0, default=0)
    freq = r.raw("moe_layer_freq")  # the original code's: a sparse layer every moe_layer_freq; HF: every one
    if freq not in (None, 1):
        r.error("moe_layer_freq", f"option moe_layer_freq = {show(freq)} is not expressible in graphspec: "
                f"{CLASSES[mt]}'s layers after first_k_dense_replace are all MoE layers",
                "use moe_layer_freq 1 (DeepSeek's released models do)")
    for k in ("output_router_logits", "aux_loss_alpha", "seq_aux", "ep_size"):
        r.raw(k)  # the load-balancing loss, expert parallelism: training and serving only
    experts, top_k = r.int("n_routed_experts"), r.int("num_experts_per_tok", optional=True)
    if top_k is None and dense < L:  # HF builds the router, which cannot run
        r.error("num_experts_per_tok", f"option num_experts_per_tok = null is not expressible in graphspec: "
                f"the router picks no number of experts ({CLASSES[mt]}Config's default)",
                "give the experts per token (DeepSeek-V2: 6, DeepSeek-V3: 8)")
    ff, shared, scale = r.int("moe_intermediate_size"), r.int("n_shared_experts"), r.float("routed_scaling_factor")
    scoring, method = r.raw("scoring_func"), r.raw("topk_method")
    want = ("sigmoid", ("noaux_tc",)) if v3 else ("softmax", ("greedy", "group_limited_greedy"))
    if scoring not in (None, want[0]):
        r.error("scoring_func", f"option scoring_func = {show(scoring)} is not expressible in graphspec for {mt}: "
                f"{CLASSES[mt]}'s router scores by {want[0]}", f"use scoring_func {show(want[0])}")
    if method not in (None, *want[1]):
        r.error("topk_method", f"option topk_method = {show(method)} is not expressible in graphspec for {mt}: "
                f"{CLASSES[mt]}'s router chooses by {' or '.join(want[1])}",
                f"use topk_method {' or '.join(show(m) for m in want[1])}")
    grouped = v3 or method == "group_limited_greedy"
    groups, topk_groups = (r.int("n_group"), r.int("topk_group")) if grouped else (r.raw("n_group"), r.raw("topk_group"))
    norm = r.bool("norm_topk_prob")
    if not v3 and norm:
        r.error("norm_topk_prob", "option norm_topk_prob = true is not expressible in graphspec for deepseek_v2: "
                "DeepseekV2's router does not renormalise its top-k weights (DeepSeek's own code does), so the "
                "config means two models", "use norm_topk_prob false (DeepSeek-V2's released models do)")
    args = ([f"{groups}", f"{topk_groups}"] if grouped and (groups, topk_groups) != (1, 1) else []) + \
        ([f"scale={num(scale)}"] if scale != 1 else [])
    router = f"sigmoid({', '.join(args)})" if v3 else f"softmax({', '.join(args)})" if args else ""
    if dense < L:
        s.var("experts", experts), s.var("top_k", top_k or 1), s.var("expert_ff", ff), s.var("shared", shared)
        if dense:
            s.var("dense", dense)
    moe = f"moe(experts, top_k, expert=glu(expert_ff, {act}), shared=shared" + \
        ("" if v3 and norm else ", normalize=false") + (f", router={router}" if router else "") + ")"
    return dense, moe
