"""OLMo 3 and GLM-4.5 configs (model_type olmo3, glm4_moe) both ways: `import_olmo3` and
`import_glm4_moe` read one into a spec, `olmo3_config` and `glm4_moe_config` write a spec's config.
Both families are made of constructs graphspec already has; only the mapping lives here.

OLMo 3 (Olmo3ForCausalLM, transformers 5) is OLMo 2's block with per-layer masks and ropes:

    reordered norms (post_attention_layernorm, post_feedforward_layernorm inside the residual),
    q_norm / k_norm over all heads' dims                      -> block: [...], qk_norm: all
    layer_types sliding_attention / full_attention, sliding_window
                                                              -> pattern(sliding(W, pos=...) * 3, causal)
    rope_parameters per layer type (or the legacy rope_theta for both and rope_scaling for the
    full layers only, Olmo3Config.convert_rope_params_to_dict)
                                                              -> the embedding's rope (full layers),
                                                                 the sliding layers' own pos=rope(...)

GLM-4.5 (Glm4MoeForCausalLM) is a Llama-like decoder with DeepSeek-V3's mixture:

    head_dim, num_key_value_heads, attention_bias (q, k, v; o_proj has none)
                                                              -> head_dim, kv_heads, qkv_bias
    partial_rotary_factor (0.5 unless given), the first dims rotated as halves
                                                              -> rope(..., fraction=)
    use_qk_norm (an RMSNorm over each head's dims)            -> qk_norm: head
    first_k_dense_replace dense SwiGLU layers, then n_routed_experts of moe_intermediate_size,
    num_experts_per_tok, n_shared_experts, sigmoid scores + e_score_correction_bias in n_group
    groups ranked by their best two, topk_group kept, norm_topk_prob, routed_scaling_factor
                                                              -> first(k, glu(...), moe(...,
                                                                 router=sigmoid(groups, topk_groups, scale=)))
    num_nextn_predict_layers (the MTP layer)                  -> not built (nor by Glm4MoeForCausalLM,
                                                                 which ignores its weights on load)
"""

from __future__ import annotations

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _head, _seq, num
from graphspec.interchange.hf_import_llm import _pattern, _rope, _rope_text, task_heads

LAYER_TYPES = ("sliding_attention", "full_attention")
OLMO_BLOCK = '[[attn, "norm(post_attention_layernorm)"], [mlp, "norm(post_feedforward_layernorm)"]]'


def _sizes(r: Reader, s: Spec, head_dim: bool) -> tuple[list[tuple[str, object]], int]:
    """The decoder's sizes as vars and fields: (fields, layers)."""
    s.names_hf = True
    d, h, L = r.int("hidden_size"), r.int("num_attention_heads"), r.int("num_hidden_layers")
    kv = r.int("num_key_value_heads", optional=True) or h
    if h % kv:
        r.error("num_key_value_heads", f"option num_key_value_heads = {kv} does not divide num_attention_heads = {h}")
    hd = (r.int("head_dim", optional=True) or d // h) if head_dim else None  # Glm4Moe: hidden_size // heads (floor)
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", L), s.var("h", h)
    f: list[tuple[str, object]] = [("dim", "d"), ("heads", "h")]
    if kv != h:
        s.var("kv", kv), f.append(("kv_heads", "kv"))
    if hd is not None and hd * h != d:
        s.var("hd", hd), f.append(("head_dim", "hd"))
    return f, L


def import_olmo3(r: Reader, s: Spec) -> None:
    f, L = _sizes(r, s, head_dim=False)
    s.var("d_ff", r.int("intermediate_size"))
    ctx = r.int("max_position_embeddings")
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    full, local = _olmo3_ropes(r, ctx)
    act = _act(r, "hidden_act")
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=d, pos={full})"
    masks = _olmo3_masks(r, L, local)
    if masks:
        f.append(("attention", masks))
    f += [("qk_norm", "all"), ("norm", f"rms_norm({num(r.float('rms_norm_eps'))})"), ("block", OLMO_BLOCK),
          ("mlp", f"glu(d_ff, {act})")]
    bias = r.bool("attention_bias")  # q, k, v and o together; the MLP has none
    f += [("qkv_bias", True), ("out_bias", True), ("mlp_bias", False)] if bias else [("bias", False)]
    if r.float("attention_dropout", default=0):
        f.append(("attn_dropout", r.float("attention_dropout")))
    s.stacks.append(("decoder×L", f + [("final_norm", True)]))
    s.head = _head(r, "olmo3", {"Olmo3ForCausalLM": f"lm(tied={num(r.bool('tie_word_embeddings', False))})",
                                "Olmo3Model": "none", **task_heads(r, "Olmo3ForCausalLM")}, "Olmo3ForCausalLM")


def _olmo3_ropes(r: Reader, ctx: int | None) -> tuple[str, str | None]:
    """The full layers' rope (the embedding's) and the sliding layers' own (None where the same)."""
    rp = r.raw("rope_parameters")
    legacy = [k for k in ("rope_theta", "rope_scaling") if k in r.data]
    if legacy or rp is None:  # transformers 4's keys: one base for both, rope_scaling on the full layers only
        if legacy and "rope_parameters" in r.data:
            r.error(legacy[0], f"option {legacy[0]} beside rope_parameters is not expressible in graphspec's import",
                    "keep one of them (transformers 5 writes rope_parameters per layer type)")
        scaling = r.raw("rope_scaling")
        if scaling is not None and not isinstance(scaling, dict):
            r.error("rope_scaling", f"rope_scaling must be an object or null, not {show(scaling)}")
            scaling = None
        theta = r.float("rope_theta", default=500_000.0)
        rp = {"full_attention": {"rope_type": "default", **(scaling or {}), "rope_theta": theta},
              "sliding_attention": {"rope_type": "default", "rope_theta": theta}}
        keys = {"full_attention": "rope_scaling" if scaling else "rope_theta", "sliding_attention": "rope_theta"}
    else:
        keys = {t: t for t in LAYER_TYPES}  # located at the layer type's object in rope_parameters
    if not isinstance(rp, dict) or not rp or set(rp) - set(LAYER_TYPES):
        r.error("rope_parameters", f"option rope_parameters = {show(rp)} is not expressible in graphspec's import: "
                "OLMo 3's has one object per layer type, 'full_attention' and 'sliding_attention'",
                "write {\"full_attention\": {...}, \"sliding_attention\": {...}}")
        return "rope(500000)", None
    out = []
    for t in ("full_attention", "sliding_attention"):
        p = rp.get(t) or {"rope_type": "default"}
        if not isinstance(p, dict):
            r.error("rope_parameters", f"rope_parameters.{t} must be an object, not {show(p)}")
            return "rope(500000)", None
        theta, _, scaling = _rope(r, False, keys[t], {"rope_theta": 500_000.0, **p})
        out.append(_rope_text(theta, 1.0, scaling, ctx if t == "full_attention" else None))
    full, local = out
    return full, (None if local == full.replace(f", max_len={ctx}", "") else local)


def _olmo3_masks(r: Reader, L: int, local: str | None) -> str | None:
    """layer_types (absent: Olmo3Config's three sliding layers for one full) with the one window."""
    lt = r.raw("layer_types")
    if lt is None:
        lt = ["sliding_attention" if (i + 1) % 4 else "full_attention" for i in range(L)]
    if not (isinstance(lt, list) and len(lt) == L and all(t in LAYER_TYPES for t in lt)):
        r.error("layer_types", f"option layer_types = {show(lt)} is not expressible in graphspec's import: it needs "
                f"one of 'sliding_attention' or 'full_attention' per layer ({L})",
                "give one entry per layer, or leave layer_types out (three sliding layers, then a full one)")
        return None
    w = r.int("sliding_window", optional=True)
    if "sliding_attention" in lt and w is None:
        r.error("sliding_window", "option sliding_window = null is not expressible in graphspec's import with "
                "'sliding_attention' layers", "give the window (OLMo 3: 4096)")
        return None
    pos = f", pos={local}" if local else ""
    return _pattern([f"sliding({w}{pos})" if t == "sliding_attention" else "causal" for t in lt])


def import_glm4_moe(r: Reader, s: Spec) -> None:
    f, L = _sizes(r, s, head_dim=True)
    act = _act(r, "hidden_act")
    s.var("d_ff", r.int("intermediate_size"))
    dense, moe = _glm_moe(r, s, act, L)
    ctx = r.int("max_position_embeddings")
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    rp = r.raw("rope_parameters")
    if isinstance(rp, dict) and "partial_rotary_factor" not in rp and "partial_rotary_factor" not in r.data:
        r.data = {**r.data, "rope_parameters": {**rp, "partial_rotary_factor": 0.5}}  # Glm4MoeConfig's default
    theta, frac, scaling = _rope(r, partial=True)
    hd = r.raw("head_dim") or r.int("hidden_size") // r.int("num_attention_heads")
    if isinstance(hd, int) and int(hd * frac) % 2:  # Glm4MoeConfig's own defaults: 4096 // 96 = 42, half of it 21
        r.error("head_dim", f"option head_dim = {show(r.raw('head_dim'))} is not expressible in graphspec: heads of "
                f"{hd} dims rotate int({num(frac)} × {hd}) = {int(hd * frac)} dims, an odd number",
                "give a head_dim whose rotated part is even (GLM-4.5: head_dim 128, partial_rotary_factor 0.5)")
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=d, pos={_rope_text(theta, frac, scaling, ctx)})"
    if r.bool("use_qk_norm"):
        f.append(("qk_norm", "head"))
    f.append(("norm", f"rms_norm({num(r.float('rms_norm_eps'))})"))
    f.append(("mlp", moe if dense == 0 else f"glu(d_ff, {act})" if dense >= L else f"first(dense, glu(d_ff, {act}), {moe})"))
    f.append(("bias", False))
    if r.bool("attention_bias"):  # q_proj, k_proj and v_proj; o_proj never has one
        f.append(("qkv_bias", True))
    if r.float("attention_dropout", default=0):
        f.append(("attn_dropout", r.float("attention_dropout")))
    s.stacks.append(("decoder×L", f + [("final_norm", True)]))
    mtp = r.int("num_nextn_predict_layers", minimum=0, default=0)
    if mtp:
        s.comment.append(f"num_nextn_predict_layers {mtp}: the multi-token-prediction layer is not built (nor by "
                         "Glm4MoeForCausalLM, which ignores its weights on load).")
    s.head = _head(r, "glm4_moe", {"Glm4MoeForCausalLM": f"lm(tied={num(r.bool('tie_word_embeddings', False))})",
                                   "Glm4MoeModel": "none"}, "Glm4MoeForCausalLM")


def _glm_moe(r: Reader, s: Spec, act: str, L: int) -> tuple[int, str]:
    """(first_k_dense_replace, the MoE layers' `moe(...)`, with its vars in `s`)."""
    dense = r.int("first_k_dense_replace", minimum=0, default=1)
    r.raw("output_router_logits")  # the load-balancing loss: training only
    for key, want in (("scoring_func", "sigmoid"), ("topk_method", "noaux_tc")):  # original code's keys, HF's values
        v = r.raw(key)
        if v not in (None, want):
            r.error(key, f"option {key} = {show(v)} is not expressible in graphspec for glm4_moe: Glm4MoeTopkRouter "
                    f"scores by sigmoid and chooses by noaux_tc", f"use {key} {show(want)}")
    experts, top_k = r.int("n_routed_experts"), r.int("num_experts_per_tok")
    groups, topk_groups = r.int("n_group"), r.int("topk_group")
    if dense < L:
        if top_k > experts:
            r.error("num_experts_per_tok", f"option num_experts_per_tok = {top_k} exceeds the {experts} experts",
                    f"use at most {experts}")
        if experts % groups or topk_groups > groups or top_k > topk_groups * (experts // groups):
            r.error("n_group", f"option n_group = {groups} / topk_group = {topk_groups} is not expressible in "
                    f"graphspec: {experts} experts in {groups} groups, {topk_groups} of them kept, must hold the "
                    f"{top_k} experts per token", "use groups that divide n_routed_experts (GLM-4.5: 1 and 1)")
    ff, shared = r.int("moe_intermediate_size"), r.int("n_shared_experts", minimum=0)
    scale, norm = r.float("routed_scaling_factor"), r.bool("norm_topk_prob")
    args = ([f"{groups}", f"{topk_groups}"] if (groups, topk_groups) != (1, 1) else []) + \
        ([f"scale={num(scale)}"] if scale != 1 else [])
    if dense < L:
        s.var("experts", experts), s.var("top_k", top_k), s.var("expert_ff", ff), s.var("shared", shared)
        if dense:
            s.var("dense", dense)
    moe = f"moe(experts, top_k, expert=glu(expert_ff, {act}), shared=shared" + ("" if norm else ", normalize=false") \
        + f", router=sigmoid({', '.join(args)}))"
    return dense, moe


# -- export ----------------------------------------------------------------------------------
def export_family(st, e) -> str | None:
    """olmo3 or glm4_moe where a `names: hf` RoPE decoder is one of them, else None."""
    masks = [m for m in st.masks if m is not None]
    if st.qk_norm == "all" and st.norm == "custom" and any(m.name == "sliding" or m.get("pos") is not None
                                                            for m in masks):
        return "olmo3"  # OLMo 2's block with sliding layers or per-layer ropes
    mlps = st.layer_mlps or (st.mlp,)
    if (st.qkv is None or st.qkv.name != "mla") and any(m is not None and m.name == "moe" and m["router"].name ==
                                                        "sigmoid" for m in mlps):
        return "glm4_moe"  # DeepSeek-V3's router without MLA
    return None


def olmo3_config(spec, decoder, rope_parameters, error) -> dict:
    """Olmo3Config's keys; `decoder` and `rope_parameters` are hf_export's, `error(message)` raises."""
    e, st = spec.embed, spec.stacks[0]
    masks = st.layer_masks()
    windows = {m["window"] for m in masks if m.name == "sliding"}
    local = {str(m.get("pos") or e.pos_use) for m in masks if m.name == "sliding"}
    if len(windows) > 1 or len(local) > 1 or any(m.name not in ("sliding", "causal") or (
            m.name == "causal" and m.get("pos") is not None) for m in masks):
        error(f"{spec.name}: an OLMo 3 config holds full layers with the embedding's rope and sliding ones of one "
              f"window with one rope; this spec's masks are {sorted({str(m) for m in masks})}")
    slid = next((m.get("pos") for m in masks if m.name == "sliding" and m.get("pos") is not None), e.pos_use)
    if st.qkv_bias != st.out_bias or st.mlp_bias:
        error(f"{spec.name}: Olmo3's attention_bias is q, k, v and o's together and its MLP has none; this spec has "
              f"qkv_bias {st.qkv_bias}, out_bias {st.out_bias}, mlp_bias {st.mlp_bias}")
    cfg = decoder(spec, "Olmo3ForCausalLM", "Olmo3Model")
    cfg.update(intermediate_size=_ff(st.mlp), num_key_value_heads=st.kv_heads or st.heads[0],
               rms_norm_eps=float(st.norm_kind.get("eps")), attention_bias=bool(st.qkv_bias),
               layer_types=[LAYER_TYPES[m.name != "sliding"] for m in masks],
               sliding_window=windows.pop() if windows else 4096,  # Olmo3Config's where no layer slides
               rope_parameters={t: {k: v for k, v in rope_parameters(p).items() if (k, v) != ("truncate", True)}
                                for t, p in (("full_attention", e.pos_use), ("sliding_attention", slid))},
               # YaRN's truncate true is HF's default (Olmo-3's files omit it); the dolma2 tokenizer's ids where a token
               pad_token_id=100277 if e.vocab > 100277 else None, eos_token_id=100257 if e.vocab > 100257 else None)
    return cfg


def _ff(mlp) -> int:
    return int(mlp.get("d_ff"))


def glm4_moe_config(spec, decoder, error) -> dict:
    """Glm4MoeConfig's keys: first_k_dense_replace dense layers, then one kind of MoE layer."""
    e, st = spec.embed, spec.stacks[0]
    mlps = list(st.layer_mlps) if st.layer_mlps else [st.mlp] * sum(st.depths)
    dense = next((i for i, m in enumerate(mlps) if m.name == "moe"), len(mlps))
    moe = mlps[dense]
    if any(m.name != "moe" for m in mlps[dense:]) or len({str(m) for m in mlps[dense:]}) > 1 \
            or len({str(m) for m in mlps[:dense]}) > 1:
        error(f"{spec.name}: a GLM-4.5 config holds first_k_dense_replace dense layers, then MoE layers all alike; "
              f"this spec's MLPs are {sorted({str(m) for m in mlps})}")
    if st.out_bias or st.mlp_bias:
        error(f"{spec.name}: Glm4Moe's attention_bias is q, k and v's (o_proj and the MLPs have none); this spec has "
              f"out_bias {st.out_bias}, mlp_bias {st.mlp_bias}")
    r = moe["router"]
    cfg = decoder(spec, "Glm4MoeForCausalLM", "Glm4MoeModel")
    cfg["rope_parameters"]["partial_rotary_factor"] = float(e.pos_use.get("fraction"))
    ff = _ff(moe["expert"])
    cfg.update(num_key_value_heads=st.kv_heads or st.heads[0], head_dim=st.head_dim or st.dim // st.heads[0],
               rms_norm_eps=float(st.norm_kind.get("eps")), attention_bias=bool(st.qkv_bias),
               use_qk_norm=st.qk_norm == "head", first_k_dense_replace=dense,
               intermediate_size=_ff(mlps[0]) if dense else ff * max(1, moe["shared"]),
               n_routed_experts=moe["experts"], num_experts_per_tok=moe["top_k"], moe_intermediate_size=ff,
               n_shared_experts=moe["shared"], routed_scaling_factor=float(r["scale"]), n_group=r["groups"],
               topk_group=r["topk_groups"], norm_topk_prob=bool(moe["normalize"]),
               pad_token_id=151329 if e.vocab > 151338 else None,  # GLM-4.5's tokenizer's ids, where they are tokens
               eos_token_id=[151329, 151336, 151338] if e.vocab > 151338 else None)
    return cfg  # num_nextn_predict_layers as Glm4MoeConfig's default (1): an MTP layer HF does not build either
