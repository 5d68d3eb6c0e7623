"""The importers of the open vocabulary's families: Llama-like decoders, T5 and PVT.

`_llm` covers llama, mistral, mixtral, qwen2, qwen3, gemma, gemma2, phi, phi3 and smollm3, which differ
only in data (as in LitGPT's config): the norm kind (RMSNorm, Gemma's (1 + w), Phi's LayerNorm), its
placement (Phi's parallel block, Gemma-2's sandwich), the MLP (SwiGLU / GeGLU, Mixtral's experts,
Phi's GELU MLP), biases, grouped-query heads, Qwen3's per-head q/k norm, the rotary fraction, a
sliding window (Gemma-2: per layer, `layer_types`), SmolLM3's layers without RoPE (`no_rope_layers`:
`causal(pos=none)`), Gemma-2's soft-caps and the tied head.
"""

from __future__ import annotations

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _classes, _head, _pad, _seq, num

LM_CLASSES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM",
              "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "gemma": "GemmaForCausalLM",
              "gemma2": "Gemma2ForCausalLM", "phi": "PhiForCausalLM", "phi3": "Phi3ForCausalLM",
              "qwen3_moe": "Qwen3MoeForCausalLM", "olmo2": "Olmo2ForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM",
              "gemma3_text": "Gemma3ForCausalLM", "smollm3": "SmolLM3ForCausalLM"}


# HF's rope_type -> graphspec's scaling construct: its keys in rope_parameters, by argument
SCALING_KEYS = {"linear": {"factor": "factor"},
                "llama3": {"factor": "factor", "low_freq_factor": "low", "high_freq_factor": "high",
                           "original_max_position_embeddings": "original"},
                "yarn": {"factor": "factor", "original_max_position_embeddings": "original", "beta_fast": "beta_fast",
                         "beta_slow": "beta_slow", "attention_factor": "attention_factor", "mscale": "mscale",
                         "mscale_all_dim": "mscale_all_dim", "truncate": "truncate"},
                "longrope": {"short_factor": "short", "long_factor": "long", "original_max_position_embeddings": "original",
                             "factor": "factor", "attention_factor": "attention_factor"}}
SCALING_DEFAULTS = {"llama3": {"low": 1.0, "high": 4.0}, "yarn": {"beta_fast": 32.0, "beta_slow": 1.0, "truncate": True}}


def _rope(r: Reader, partial: bool, key: str = "rope_parameters", rp: dict | None = None) -> tuple[float, float, str]:
    """(theta, rotary fraction, scaling) from transformers 5's `rope_parameters` or the older top-level
    `rope_theta` / `rope_scaling` / `partial_rotary_factor`; scaling is graphspec's construct
    (`llama3(8, ...)`) or "" for unscaled RoPE. `rp`: one layer type's parameters (Gemma-3)."""
    if rp is not None or "rope_parameters" in r.data or not any(k in r.data for k in ("rope_theta", "rope_scaling")):
        rp = r.raw("rope_parameters") if rp is None else rp
        if not isinstance(rp, dict):
            r.error(key, f"{key} must be an object, not {show(rp)}")
            return 10000.0, 1.0, ""
        known = {"rope_theta", "rope_type", "type"} | ({"partial_rotary_factor"} if partial else set())
        scaling = _scaling(r, key, rp, known)
        theta, frac = rp.get("rope_theta", 10000.0), rp.get("partial_rotary_factor", 1.0)
        for k, v in (("rope_theta", theta), ("partial_rotary_factor", frac), ("rope_scaling", None)):
            if key == "rope_parameters" and k in r.data and r.raw(k) != v and not (
                    k == "rope_scaling" and isinstance(r.data[k], dict) and all(rp.get(a) == b for a, b in
                                                                                r.data[k].items() if a != "type")):
                r.error(k, f"option {k} = {show(r.data[k])} contradicts rope_parameters ({show(rp)})",
                        "keep one of them")  # a legacy key beside rope_parameters must agree with it
    else:
        legacy = r.raw("rope_scaling")
        if legacy is not None and not isinstance(legacy, dict):
            r.error("rope_scaling", f"rope_scaling must be an object or null, not {show(legacy)}")
            legacy = None
        scaling = _scaling(r, "rope_scaling", legacy, {"rope_type", "type"}) if legacy else ""
        theta = r.float("rope_theta", default=10000.0)
        frac = r.float("partial_rotary_factor", default=1.0) if partial else 1.0
    for k, v in (("rope_theta", theta), ("partial_rotary_factor", frac)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            r.error(key, f"{k} must be a positive number, not {show(v)}")
            return 10000.0, 1.0, ""
    return float(theta), float(frac), scaling


def _scaling(r: Reader, key: str, rp: dict, known: set) -> str:
    """graphspec's `scaling=` construct for HF's rope_type and its numbers ("" for "default")."""
    kind = rp.get("rope_type", rp.get("type", "default"))
    kind = "longrope" if kind == "su" else kind  # Phi-3-mini-128k's first name for it (Phi3Config reads both)
    if kind == "default":
        extra = sorted(set(rp) - known)
        if extra:
            r.error(key, f"option {key}.{extra[0]} = {show(rp[extra[0]])} is not expressible in graphspec with "
                    "rope_type 'default'", "remove it, or give the rope_type it belongs to (linear, llama3, yarn, longrope)")
        return ""
    if kind not in SCALING_KEYS:
        r.error(key, f"option {key}.rope_type = {show(kind)} is not expressible in graphspec: its RoPE is "
                "unscaled ('default') or rescaled by 'linear', 'llama3', 'yarn' or 'longrope'",
                "write the spec by hand, or use one of those rope_types")
        return ""
    names = SCALING_KEYS[kind]
    for k in sorted(set(rp) - known - set(names)):
        r.error(key, f"option {key}.{k} = {show(rp[k])} is not expressible in graphspec with rope_type {show(kind)}",
                f"remove it; {kind} reads {', '.join(names)}")
    if kind == "longrope":
        return _longrope(r, key, rp)
    args: dict[str, object] = {}
    for hf, arg in names.items():
        v = rp.get(hf)
        if v is None:
            continue
        ok = isinstance(v, bool) if arg == "truncate" else (
            isinstance(v, (int, float)) and not isinstance(v, bool) and (v >= 1 if arg in ("factor", "original")
                                                                       else v >= 0 if arg.startswith("mscale")
                                                                       else v > 0))
        if not ok or (arg == "original" and v != int(v)):
            what = "true or false" if arg == "truncate" else "a whole number ≥ 1" if arg == "original" else \
                "a number ≥ 1" if arg == "factor" else "a number ≥ 0" if arg.startswith("mscale") else "a positive number"
            r.error(key, f"option {key}.{hf} = {show(v)} must be {what}")
            return ""
        args[arg] = int(v) if arg == "original" else v
    if "factor" not in args and kind == "yarn" and "original" in args:  # HF: max_position_embeddings / original
        ctx = r.data.get("max_position_embeddings", r.defaults.get("max_position_embeddings"))
        if isinstance(ctx, int) and not isinstance(ctx, bool) and ctx >= args["original"]:
            args["factor"] = ctx / args["original"]
    need = ["factor"] + (["original"] if kind in ("llama3", "yarn") else [])
    for arg in need:
        if arg not in args:
            hf = next(h for h, a in names.items() if a == arg)
            r.error(key, f"option {key}.{hf} is missing: rope_type {show(kind)} needs it")
            return ""
    if kind == "llama3" and not args.get("high", 4.0) > args.get("low", 1.0):
        r.error(key, f"{key}.high_freq_factor {show(args.get('high', 4.0))} must exceed low_freq_factor "
                f"{show(args.get('low', 1.0))}")
        return ""
    if kind == "yarn" and not args.get("beta_fast", 32.0) > args.get("beta_slow", 1.0):
        r.error(key, f"{key}.beta_fast {show(args.get('beta_fast', 32.0))} must exceed beta_slow "
                f"{show(args.get('beta_slow', 1.0))}")
        return ""
    defaults = SCALING_DEFAULTS.get(kind, {})
    parts = [num(args.pop("factor"))] + [f"{a}={num(v)}" for a, v in args.items() if defaults.get(a) != v]
    return f"{kind}({', '.join(parts)})"


def _longrope(r: Reader, key: str, rp: dict) -> str:
    """`longrope(short=[...], long=[...], original=N)` from HF's short_factor / long_factor (one per
    rotated pair of dims) and original_max_position_embeddings (in rope_parameters, or top-level
    beside the hub's legacy rope_scaling); factor and attention_factor when given."""
    d = {**r.defaults, **r.data}
    head = d.get("head_dim") or (d.get("hidden_size", 0) // max(d.get("num_attention_heads") or 1, 1))
    frac = rp.get("partial_rotary_factor", d.get("partial_rotary_factor", 1.0))
    half = int(head * frac) // 2 if isinstance(head, int) and isinstance(frac, (int, float)) else None
    parts = []
    for hf, arg in (("short_factor", "short"), ("long_factor", "long")):
        v = rp.get(hf)
        if not (isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0
                                                  for x in v)):
            r.error(key, f"option {key}.{hf} = {show(v)} must be a list of positive numbers"
                    + (f", one per rotated pair of dims ({half})" if half else ""))
            return ""
        if half and len(v) != half:
            r.error(key, f"option {key}.{hf} has {len(v)} factors, but each head rotates {2 * half} dims "
                    f"({half} factors)", f"give {half} numbers")
            return ""
        rows, row = [], f"\n    {arg}=["
        for x in [num(float(x)) for x in v]:  # wrapped at 100 columns (a YAML plain scalar folds them)
            if len(row) + len(x) > 96:
                rows, row = rows + [row.rstrip()], "\n      "
            row += x + ", "
        parts.append("".join(rows) + row.removesuffix(", ") + "]")
    original = rp.get("original_max_position_embeddings", r.data.get("original_max_position_embeddings"))
    if not (isinstance(original, int) and not isinstance(original, bool) and original >= 1):
        r.error(key, f"option original_max_position_embeddings = {show(original)} must be a whole number ≥ 1: "
                "rope_type \"longrope\" needs it")
        return ""
    head = [f"original={original}"]
    for a in ("factor", "attention_factor"):
        v = rp.get(a)
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
            r.error(key, f"option {key}.{a} = {show(v)} must be a positive number")
            return ""
        head += [f"{a}={num(v)}"] if v is not None else []
    return f"longrope({', '.join(head)}," + ",".join(parts) + ")"  # the lists on lines of their own


def _rope_text(theta: float, frac: float, scaling: str, ctx: int | None = None, interleaved: bool = False) -> str:
    """`rope(theta, fraction=, interleaved=, max_len=, scaling=)`, each only where it is not the default."""
    return f"rope({num(theta)}" + (f", fraction={num(frac)}" if frac != 1.0 else "") + \
        (", interleaved=true" if interleaved else "") + (f", max_len={ctx}" if ctx else "") + \
        (f", scaling={scaling}" if scaling else "") + ")"


def import_gptj(r: Reader, s: Spec) -> None:
    """GPT-J (Wang & Komatsuzaki 2021, mesh-transformer-jax): x + attn(ln(x)) + mlp(ln(x)) with one
    LayerNorm (`placement: parallel`), RoPE on the first rotary_dim dims of each head with GPT-J's
    interleaved pairs, q, k, v and out_proj without bias, an untied LM head with a bias."""
    s.names_hf = True
    d, h = r.int("n_embd"), r.int("n_head")
    if d % h:
        r.error("n_head", f"n_head {h} does not divide n_embd {d}")
        h = 1
    rot = r.int("rotary_dim")
    if rot != 1 and (rot > d // h or rot % 2):  # 1: r.int's fallback after its own error (null, 0)
        r.error("rotary_dim", f"rotary_dim {rot} must be even and at most the head size {d // h}")
        rot = d // h
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", r.int("n_layer")), s.var("h", h)
    s.var("d_ff", r.int("n_inner", optional=True) or 4 * d), s.var("seq_len", min(128, r.int("n_positions")))
    s.var("batch", 1)
    r.expect("scale_attn_weights", (True,), "attention without the 1/√d scale")
    drop = r.float("embd_pdrop", default=0)
    s.input = "tokens(seq_len)"
    s.embed = (f"tokens(vocab, dim=d, pos={_rope_text(10000.0, rot / (d // h), '', r.int('n_positions'), True)}"
               + (f", dropout={num(drop)})" if drop else ")"))
    s.stacks.append(("decoder×L", [("dim", "d"), ("heads", "h"), ("norm", f"layer_norm({num(r.float('layer_norm_epsilon'))})"),
                                   ("placement", "parallel"), ("mlp", f"mlp(d_ff, {_act(r, 'activation_function')})"),
                                   ("qkv_bias", False), ("out_bias", False),
                                   ("dropout", r.float("resid_pdrop", default=0)),
                                   ("attn_dropout", r.float("attn_pdrop", default=0)), ("final_norm", True)]))
    arch = r.raw("architectures")
    lm_head = r.base is False and (arch in (None, []) or isinstance(arch, list) and arch[:1] == ["GPTJForCausalLM"])
    if r.bool("tie_word_embeddings", False) and lm_head:
        r.error("tie_word_embeddings", "option tie_word_embeddings = true is not expressible in graphspec for gptj: "
                "GPT-J's head keeps its own bias, and a tied head in graphspec has none", "use false (GPT-J's)")
    heads = {"GPTJForCausalLM": "lm(tied=false, bias=true)", "GPTJModel": "none",
             "GPTJForSequenceClassification": f"classifier({_classes(r)}, pool=last, bias=false{_pad(r)})",
             "GPTJForQuestionAnswering": "span"}
    s.head = _head(r, "gptj", heads, "GPTJForCausalLM")


def _llm(r: Reader, s: Spec) -> None:
    mt = r.data["model_type"]
    gemma3 = mt == "gemma3_text"  # Gemma-2's layer with QK-norm, two RoPE bases, no soft-caps by default
    phi, gemma, gemma2 = mt == "phi", mt in ("gemma", "gemma2", "gemma3_text"), mt in ("gemma2", "gemma3_text")
    moe, qwen_moe = mt in ("mixtral", "qwen3_moe", "qwen2_moe"), mt in ("qwen3_moe", "qwen2_moe")
    s.names_hf = True
    d, h = r.int("hidden_size"), r.int("num_attention_heads")
    kv = r.int("num_key_value_heads", optional=True) or h
    head_dim = None if phi else r.int("head_dim", optional=True)
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", r.int("num_hidden_layers")), s.var("h", h)
    s.var("kv", kv), s.var("d_ff", r.int("moe_intermediate_size" if qwen_moe else "intermediate_size"))
    if qwen_moe:  # every layer sparse: the dense MLP's intermediate_size is then never built
        who = "Qwen3-MoE" if mt == "qwen3_moe" else "Qwen2-MoE"
        r.expect("decoder_sparse_step", (1,), f"{who}'s dense layers between sparse ones are not imported",
                 "use decoder_sparse_step 1 (its released models do)")
        r.expect("mlp_only_layers", ([],), f"{who}'s dense layers (mlp_only_layers) are not imported",
                 "use mlp_only_layers [] (its released models do)")
        r.raw("intermediate_size")
    if moe:
        s.var("experts", r.int("num_experts" if mt == "qwen2_moe" else "num_local_experts"))
        s.var("top_k", r.int("num_experts_per_tok"))
        for k in ("output_router_logits", "router_aux_loss_coef", "router_jitter_noise"):
            r.raw(k)  # training only (the load-balancing loss, jitter noise)
    ctx = r.int("max_position_embeddings")  # RoPE has no table: rope(max_len=) records it, export writes it back
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    r.raw("pretraining_tp")  # a slicing of the same matmuls
    local_pos = None
    if gemma3:  # one rope per layer type: the global one at the embedding, the local one on sliding layers
        pos, local_pos = _gemma3_ropes(r, ctx)
        r.raw("_sliding_window_pattern")  # Gemma3TextConfig.to_dict()'s copy of sliding_window_pattern
    else:
        theta, frac, scaling = _rope(r, partial=phi or mt == "phi3")
        pos = _rope_text(theta, frac, scaling, ctx)
    if mt == "phi3":
        r.raw("original_max_position_embeddings")  # read by longrope scaling only
        r.raw("embd_pdrop")  # Phi3Model applies no embedding dropout
    act_key = "hidden_activation" if gemma2 or (gemma and r.data.get("hidden_activation") is not None) \
        else "hidden_act"
    if gemma:
        r.raw("hidden_activation")
    if gemma2:
        r.raw("hidden_act")  # Gemma2MLP reads hidden_activation only
    act = _act(r, act_key)
    tied = r.bool("tie_word_embeddings", False)
    if phi and tied:
        r.error("tie_word_embeddings", "option tie_word_embeddings = true is not expressible in graphspec for phi: "
                "Phi's head keeps its own bias, and a tied head in graphspec has none", "use false (phi-1.5, phi-2)")
    drop = r.float("embd_pdrop", default=0) if phi else 0.0
    resid = r.float("resid_pdrop", default=0) if mt == "phi3" else 0.0  # after attention and after the MLP
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=d, pos={pos}" + (", scale=true" if gemma else "") + \
        (f", dropout={num(drop)}" if drop else "") + ")"
    f = [("dim", "d"), ("heads", "h")]
    if kv != h:
        f.append(("kv_heads", "kv"))
    if head_dim is not None and head_dim * h != d:
        f.append(("head_dim", head_dim))
    masks = _layer_masks(r, local_pos) if gemma3 else _masks(r, mt)
    if masks:
        f.append(("attention", masks))
    if gemma2:
        f += _gemma2_attention(r, head_dim or d // h)
    if mt in ("qwen3", "qwen3_moe", "gemma3_text"):
        f.append(("qk_norm", True))  # q_norm, k_norm: RMSNorm over each head's dims
    if mt == "olmo2":  # q_norm, k_norm over all heads' dims; a norm after each sub-layer, inside the residual
        f += [("qk_norm", "all"), ("block", '[[attn, "norm(post_attention_layernorm)"], '
                                           '[mlp, "norm(post_feedforward_layernorm)"]]')]
    if phi:
        f += [("norm", f"layer_norm({num(r.float('layer_norm_eps'))})"), ("placement", "parallel"),
              ("mlp", f"mlp(d_ff, {act})")]
        r.expect("qk_layernorm", (False,), "Phi's per-head q/k LayerNorm is not mapped to HF's names")
        if r.float("resid_pdrop", default=0):
            f.append(("dropout", r.float("resid_pdrop")))
    else:
        eps = num(r.float("rms_norm_eps"))
        f.append(("norm", f"rms_norm({eps}, offset=1)" if gemma else f"rms_norm({eps})"))
        if gemma2:  # input_layernorm, post_attention_layernorm, pre_ and post_feedforward_layernorm
            f.append(("placement", "sandwich"))
        norm_topk = r.bool("norm_topk_prob") if qwen_moe else True
        f.append(("mlp", f"moe(experts, top_k, expert=glu(d_ff, {act})" + _shared_expert(r, mt)
                  + ("" if norm_topk else ", normalize=false") + ")" if moe else f"glu(d_ff, {act})"))
        attn_bias = r.bool("attention_bias") if mt in ("llama", "gemma", "gemma2", "gemma3_text", "qwen3", "qwen3_moe",
                                                       "olmo2", "smollm3") \
            else False
        mlp_bias = r.bool("mlp_bias") if mt in ("llama", "smollm3") else False
        if mt == "qwen2" or (mt == "qwen2_moe" and r.bool("qkv_bias")):  # q, k, v with biases, o_proj, MLP without
            f += [("bias", False), ("qkv_bias", True)]
        elif not (attn_bias or mlp_bias):
            f.append(("bias", False))
        else:
            f += [("qkv_bias", attn_bias), ("out_bias", attn_bias), ("mlp_bias", mlp_bias)]
        if gemma and r.raw("use_bidirectional_attention") not in (None, False):
            r.error("use_bidirectional_attention", "option use_bidirectional_attention = true is not expressible in "
                    "graphspec's import: a Gemma decoder is causal")
    if resid:
        f.append(("dropout", resid))
    if r.float("attention_dropout", default=0):
        f.append(("attn_dropout", r.float("attention_dropout")))
    s.stacks.append(("decoder×L", f + [("final_norm", True)]))
    final_cap = r.float("final_logit_softcapping", optional=True) if gemma2 else None
    lm = f"lm(tied={num(tied)}" + (", bias=true" if phi else "") + \
        (f", softcap={num(final_cap)}" if final_cap else "") + ")"
    cls = LM_CLASSES[mt]
    base = "Gemma3TextModel" if gemma3 else cls.replace("ForCausalLM", "Model")
    s.head = _head(r, mt, {cls: lm, base: "none", **task_heads(r, cls)}, cls)


# HF's generic task heads on a decoder (transformers/modeling_layers.py): `score`, without bias, at
# each row's last token that is not pad_token_id (GenericForSequenceClassification; pool=last with
# pad_token_id, or the last position where the config has none or one that is no token), or on
# every token with a bias (GenericForTokenClassification, token_classification_bias). Per causal-LM class: the task classes' prefix and the tasks
# transformers has (Llama 4 and GLM-4.5 have none; Gemma 3's text-only one is Gemma3Text...).
_SEQ, _BOTH = ("SequenceClassification",), ("SequenceClassification", "TokenClassification")
_ALL = (*_BOTH, "QuestionAnswering")
DECODER_TASKS = {**{cls: (cls.removesuffix("ForCausalLM"), _ALL) for cls in LM_CLASSES.values()},
                 "GemmaForCausalLM": ("Gemma", _BOTH), "Gemma2ForCausalLM": ("Gemma2", _BOTH),
                 "PhiForCausalLM": ("Phi", _BOTH), "Phi3ForCausalLM": ("Phi3", _BOTH),
                 "Olmo2ForCausalLM": ("Olmo2", _SEQ), "Gemma3ForCausalLM": ("Gemma3Text", _SEQ),
                 "GptOssForCausalLM": ("GptOss", _BOTH), "DeepseekV3ForCausalLM": ("DeepseekV3", _BOTH),
                 "DeepseekV2ForCausalLM": ("DeepseekV2", _SEQ), "Olmo3ForCausalLM": ("Olmo3", _SEQ)}


def task_class(lm_class: str, task: str) -> str | None:
    """The HF class of `task` ("SequenceClassification", "TokenClassification",
    "QuestionAnswering") beside the
    causal LM `lm_class`, or None where transformers has none."""
    prefix, tasks = DECODER_TASKS.get(lm_class, (None, ()))
    return f"{prefix}For{task}" if task in tasks else None


def task_heads(r: Reader, lm_class: str) -> dict[str, str]:
    """{HF task class: its head} for the decoder whose causal LM is `lm_class`."""
    heads = {}
    if task_class(lm_class, "SequenceClassification"):
        heads[task_class(lm_class, "SequenceClassification")] = f"classifier({_classes(r)}, pool=last, bias=false" \
            + _pad(r) + ")"
    if task_class(lm_class, "TokenClassification"):
        bias = "" if r.bool("token_classification_bias", True) else ", bias=false"
        heads[task_class(lm_class, "TokenClassification")] = f"classifier({_classes(r)}, pool=tokens{bias})"
    if task_class(lm_class, "QuestionAnswering"):  # qa_outputs: Linear(d, 2), whatever num_labels says
        heads[task_class(lm_class, "QuestionAnswering")] = "span"
    return heads


def _shared_expert(r: Reader, mt: str) -> str:
    """Qwen2-MoE's shared expert (one MLP of shared_expert_intermediate_size, gated by
    sigmoid(shared_expert_gate(x))) as `shared=N, shared_gate=true`: N expert widths."""
    if mt != "qwen2_moe":
        return ""
    width, ff = r.int("shared_expert_intermediate_size"), r.int("moe_intermediate_size")
    if width % ff:
        r.error("shared_expert_intermediate_size", f"option shared_expert_intermediate_size = {width} is not "
                f"expressible in graphspec: the shared expert is a whole number of experts of {ff}",
                f"use a multiple of moe_intermediate_size {ff} (Qwen1.5-MoE-A2.7B: 5632 = 4 × 1408)")
        return ""
    return f", shared={width // ff}, shared_gate=true"


def _masks(r: Reader, mt: str) -> str | None:
    """The attention mask: causal (the decoder's default: None), or Mistral's sliding(W)."""
    if mt in ("mistral", "mixtral", "phi3"):
        w = r.int("sliding_window", optional=True)
        return None if w is None else f"sliding({w})"
    if mt in ("qwen2", "qwen3", "qwen3_moe", "qwen2_moe"):
        r.expect("use_sliding_window", (False,), f"{LM_CLASSES[mt][:5]}'s sliding window above max_window_layers "
                 "is not imported", "set use_sliding_window to false (its released models do)")
        r.raw("sliding_window"), r.raw("max_window_layers")
        lt = r.raw("layer_types")
        if lt is not None and (not isinstance(lt, list) or any(t != "full_attention" for t in lt)):
            r.error("layer_types", f"option layer_types = {show(lt)} is not expressible in graphspec's import: "
                    "only full attention in every layer", "use 'full_attention' for every layer")
    if mt == "gemma2":
        return _layer_masks(r)
    if mt == "smollm3":
        return _nope_masks(r)
    return None


def _nope_masks(r: Reader) -> str | None:
    """SmolLM3's layers without RoPE: `no_rope_layers` (1: RoPE, 0: none; absent, a NoPE layer every
    `no_rope_layer_interval`-th, SmolLM3Config's rule) -> `pattern(causal * 3, causal(pos=none))`.
    Its sliding window (on NoPE layers only, with use_sliding_window) is not imported."""
    n, every, rope = r.int("num_hidden_layers"), r.int("no_rope_layer_interval"), r.raw("no_rope_layers")
    if rope is None:
        rope = [int((i + 1) % every != 0) for i in range(n)]
    if not (isinstance(rope, list) and len(rope) >= n and all(type(x) is int and x in (0, 1) for x in rope)):
        r.error("no_rope_layers", f"option no_rope_layers = {show(rope)} is not expressible in graphspec's import: "
                f"it needs a 1 (RoPE) or 0 (no positions) for each of the {n} layers",
                "give one 0 or 1 per layer, or leave no_rope_layers out (a NoPE layer every no_rope_layer_interval)")
        return None
    r.expect("use_sliding_window", (False,), "SmolLM3's sliding window (on its NoPE layers) is not imported",
             "set use_sliding_window to false (SmolLM3-3B does)")
    r.raw("sliding_window"), r.raw("max_window_layers")  # read by the sliding window only
    lt = r.raw("layer_types")
    if lt is not None and (not isinstance(lt, list) or any(t != "full_attention" for t in lt)):
        r.error("layer_types", f"option layer_types = {show(lt)} is not expressible in graphspec's import: "
                "SmolLM3 with full attention in every layer", "use 'full_attention' for every layer")
    return _pattern(["causal" if x else "causal(pos=none)" for x in rope[:n]])


def _pattern(masks: list[str]) -> str | None:
    """One mask per layer as the `attention:` value: the one mask (None for causal, the default),
    `pattern(...)` of the shortest repeating run (`m * 5` for a run of one mask), or a list."""
    n = len(masks)
    p = next(p for p in range(1, n + 1) if all(masks[i] == masks[i % p] for i in range(n)))
    if p == 1:
        return None if masks[0] == "causal" else masks[0]
    if p == n:  # a YAML flow list: a call with a comma is quoted
        return "[" + ", ".join(f'"{m}"' if "," in m else m for m in masks) + "]"
    runs: list[list] = []  # the period as runs of one mask: sliding(512) * 5, causal
    for m in masks[:p]:
        if runs and runs[-1][0] == m:
            runs[-1][1] += 1
        else:
            runs.append([m, 1])
    return f"pattern({', '.join(m if k == 1 else f'{m} * {k}' for m, k in runs)})"


GEMMA2_LAYER_TYPES = ("sliding_attention", "full_attention")


def _gemma3_layer_types(r: Reader, n: int) -> list[str]:
    """Gemma3TextConfig's default layer_types: every `sliding_window_pattern`-th layer (6) global."""
    p = r.raw("sliding_window_pattern")
    p = 6 if p is None else p
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        r.error("sliding_window_pattern", f"sliding_window_pattern must be a whole number ≥ 1, not {show(p)}")
        p = 6
    return ["sliding_attention" if (i + 1) % p else "full_attention" for i in range(n)]


def _gemma3_ropes(r: Reader, ctx: int | None) -> tuple[str, str | None]:
    """Gemma-3's two RoPEs: rope_parameters per layer type (transformers 5) or the older rope_theta
    (global), rope_local_base_freq (local) and rope_scaling (global layers only). Returns the
    embedding's (global) rope and the sliding layers' own, None where it is the same."""
    rp = r.raw("rope_parameters")
    if rp is None or any(k in r.data for k in ("rope_theta", "rope_local_base_freq", "rope_scaling")):
        r.raw("rope_parameters")
        legacy = r.raw("rope_scaling")
        full = {"rope_type": "default", **(legacy if isinstance(legacy, dict) else {}),
                "rope_theta": r.float("rope_theta", default=1_000_000.0)}
        if legacy is not None and not isinstance(legacy, dict):
            r.error("rope_scaling", f"rope_scaling must be an object or null, not {show(legacy)}")
        rp = {"full_attention": full, "sliding_attention": {"rope_type": "default",
                                                            "rope_theta": r.float("rope_local_base_freq",
                                                                                  default=10_000.0)}}
    if not isinstance(rp, dict) or set(rp) - set(GEMMA2_LAYER_TYPES):
        r.error("rope_parameters", f"option rope_parameters = {show(rp)} is not expressible in graphspec's import: "
                "Gemma-3's has one object per layer type, 'full_attention' and 'sliding_attention'")
        return "rope(1000000)", None
    out = []
    for t, default in (("full_attention", 1_000_000.0), ("sliding_attention", 10_000.0)):
        p = rp.get(t) or {"rope_type": "default"}
        theta, frac, scaling = _rope(r, False, f"rope_parameters.{t}", {"rope_theta": default, **p})
        out.append(_rope_text(theta, frac, scaling, ctx if t == "full_attention" else None))
    glob, local = out
    return glob, (None if local == glob.replace(f", max_len={ctx}", "") else local)


def _layer_masks(r: Reader, local_pos: str | None = None) -> str | None:
    """Gemma-2/3's per-layer masks: `layer_types` (absent: Gemma-2's sliding first, then
    alternating; Gemma-3's five sliding for one full) with the one `sliding_window` -> one mask,
    `pattern(...)` of the shortest repeating run (`m * 5` for a run of one mask), or one mask per
    layer. `local_pos`: the sliding layers' own rope (Gemma-3)."""
    n, lt = r.int("num_hidden_layers"), r.raw("layer_types")
    if lt is None:
        lt = _gemma3_layer_types(r, n) if r.data["model_type"] == "gemma3_text" else \
            [GEMMA2_LAYER_TYPES[i % 2] for i in range(n)]
    if not (isinstance(lt, list) and len(lt) == n and all(t in GEMMA2_LAYER_TYPES for t in lt)):
        r.error("layer_types", f"option layer_types = {show(lt)} is not expressible in graphspec's import: it needs "
                f"one of 'sliding_attention' or 'full_attention' per layer ({n})",
                "give one entry per layer, or leave layer_types out (sliding and full alternating)")
        return None
    w = r.int("sliding_window", optional=True) if "sliding_attention" in lt else None
    if "sliding_attention" in lt and w is None:
        r.error("sliding_window", "option sliding_window = null is not expressible in graphspec's import with "
                "'sliding_attention' layers", "give the window (Gemma-2: 4096)")
        return None
    r.raw("sliding_window")
    local = f", pos={local_pos}" if local_pos else ""
    return _pattern([f"sliding({w}{local})" if t == "sliding_attention" else "causal" for t in lt])


def _gemma2_attention(r: Reader, head_dim: int) -> list[tuple[str, object]]:
    """Gemma-2's attention-logit soft-cap, and its logit scale query_pre_attn_scalar^-0.5
    (graphspec's default 1/√head_dim when the two are equal, as in the 2B and 9B releases)."""
    out: list[tuple[str, object]] = []
    q = r.raw("query_pre_attn_scalar")
    if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0 < q < 2 ** 31:
        r.error("query_pre_attn_scalar", f"query_pre_attn_scalar must be a positive number, not {show(q)}")
    elif q != head_dim:  # Gemma-2 27B: 144 = hidden_size / heads, head_dim 128
        out.append(("scale", f"{num(q)}**-0.5"))
    cap = r.float("attn_logit_softcapping", optional=True)
    if cap:
        out.append(("softcap", cap))
    return out


def _t5(r: Reader, s: Spec) -> None:
    d, h, kv = r.int("d_model"), r.int("num_heads"), r.int("d_kv")
    L = r.int("num_layers")
    s.var("d_model", d), s.var("heads", h), s.var("d_ff", r.int("d_ff")), s.var("L", L)
    s.var("L_dec", r.int("num_decoder_layers", optional=True) or L)
    s.var("vocab", r.int("vocab_size")), s.var("buckets", r.int("relative_attention_num_buckets"))
    s.var("max_distance", r.int("relative_attention_max_distance")), s.var("seq_len", 128), s.var("tgt_len", 128)
    s.var("batch", 1)
    r.expect("feed_forward_proj", ("relu",), "T5 v1.1's gated feed-forward (wi_0, wi_1) is not mapped",
             "graphspec imports feed_forward_proj 'relu' (T5 v1.0)")
    r.raw("dense_act_fn"), r.raw("is_gated_act")  # derived from feed_forward_proj
    r.expect("is_decoder", (False,), "T5 as a decoder only")
    head, why = _t5_lm_head(r)
    eps = num(r.float("layer_norm_epsilon"))
    drop = r.float("dropout_rate", default=0)
    s.input = "tokens(seq_len, tgt_len=tgt_len)"
    s.embed = "tokens(vocab, dim=d_model, pos=relative_buckets(buckets, max_distance))"
    f = [("dim", "d_model"), ("heads", "heads")] + ([("head_dim", kv)] if kv * h != d else []) + \
        [("mlp", "mlp(d_ff, relu)"), ("bias", False), ("norm", f"rms_norm({eps})"), ("scale", 1)] + \
        ([("dropout", drop)] if drop else []) + [("final_norm", True)]
    s.stacks += [("encoder×L", f), ("decoder×L_dec", f)]
    s.head = _head(r, "t5", {"T5Model": "none", **head}, "T5Model", why)


def _t5_lm_head(r: Reader) -> tuple[dict[str, str], dict[str, str]]:
    """T5ForConditionalGeneration's head. In transformers 5 the head is always tied to `shared`
    (T5Config forces tie_word_embeddings) and scales the decoder output by d_model^-0.5 when
    `scale_decoder_outputs` (absent: unless the file says tie_word_embeddings false, T5 v1.1's
    flag): `lm(tied=true, scale=d_model**-0.5)`, unscaled `lm(tied=true)`. An untied file means
    another head to transformers 4."""
    tie = r.bool("tie_word_embeddings", True)
    scale = r.bool("scale_decoder_outputs", True) if "scale_decoder_outputs" in r.data else tie
    if not tie:
        return {}, {"T5ForConditionalGeneration": "tie_word_embeddings = false means an untied lm_head to "
                    "transformers 4 but the shared embedding to transformers 5 (T5Config forces the tie)"}
    return {"T5ForConditionalGeneration": "lm(tied=true, scale=d_model**-0.5)" if scale else "lm(tied=true)"}, {}


def _pvt(r: Reader, s: Spec) -> None:
    n = r.int("num_encoder_blocks")
    depths, dims = r.ints("depths", n), r.ints("hidden_sizes", n)
    heads, ratios = r.ints("num_attention_heads", n), r.ints("sequence_reduction_ratios", n)
    patches, strides = r.ints("patch_sizes", n), r.ints("strides", n)
    mlp = r.numbers("mlp_ratios", n)
    s.var("img_size", r.int("image_size")), s.var("classes", _classes(r)), s.var("batch", 1)
    if patches[0] != strides[0]:
        r.error("strides", f"option strides = {show(strides)} is not expressible in graphspec: the first patch "
                f"embedding is a stride-patch convolution (patch {patches[0]}, stride {strides[0]})")
    if len(set(patches[1:])) > 1 or len(set(strides[1:])) > 1:
        r.error("patch_sizes", f"option patch_sizes = {show(patches)} / strides = {show(strides)} is not expressible "
                "in graphspec: stages 2 and later share one patch_embed(kernel, stride)")
    eps = num(r.float("layer_norm_eps"))
    channels = r.int("num_channels")
    s.input = "image(img_size)" if channels == 3 else f"image(img_size, channels={channels})"
    s.embed = f"patches({patches[0]}, dim={dims[0]}, norm=true, pos=learned, eps={eps})"
    f = [("dim", dims), ("depths", depths), ("heads", heads), ("mlp_ratio", mlp),
         ("attention", f"spatial_reduction(R={num(ratios)})")]
    if n > 1:
        f.append(("downsample", f"patch_embed({patches[1]}, stride={strides[1]}, pos=learned, cls_token=true)"))
    f += [("norm", f"layer_norm({eps})"), ("act", _act(r, "hidden_act"))]
    if not r.bool("qkv_bias", True):
        f.append(("qkv_bias", False))
    for k, key in (("dropout", "hidden_dropout_prob"), ("attn_dropout", "attention_probs_dropout_prob"),
                   ("drop_path", "drop_path_rate")):
        v = r.float(key, default=0)
        if v:
            f.append((k, v))
    s.stacks.append(("encoder", f + [("final_norm", True)]))
    s.head = _head(r, "pvt", {"PvtForImageClassification": "classifier(classes, pool=cls)", "PvtModel": "none"},
                   "PvtForImageClassification")
