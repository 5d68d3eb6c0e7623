"""ModernBERT (Warner et al. 2024) to and from Hugging Face configs, in the layout of
specs/modernbert_base.yaml: `model_type: modernbert` (ModernBertModel, ModernBertForMaskedLM).

    vocab_size, hidden_size, num_hidden_layers,    -> the encoder; mlp: glu(d_ff, act) (HF's Wi: the
    num_attention_heads, intermediate_size,           activation on its first half, graphspec's gate_proj)
    hidden_activation
    norm_eps, norm_bias                            -> layer_norm(eps, bias=) for every norm: the embedding's,
                                                      the blocks' and final_norm; block 0 has no attn_norm
    attention_bias, mlp_bias                       -> qkv_bias and out_bias, mlp_bias
    layer_types (or global_attn_every_n_layers,    -> pattern(global, local(W) * 2) with W = local_attention
    3 by default), local_attention                    (|i − j| ≤ W // 2, HF's sliding_window)
    rope_parameters per layer type (or             -> the embedding's rope (full layers) and the local
    global_rope_theta, local_rope_theta)              masks' own `local(W, pos=rope(θ))`
    max_position_embeddings                        -> rope(..., max_len=)
    embedding_dropout, mlp_dropout                 -> tokens(..., dropout=p), glu(..., drop=p)
    ModernBertForMaskedLM                          -> head: mlm(act, eps, bias=norm_bias) (classifier_bias
                                                      the same), its decoder tied (tie_word_embeddings)
    ModernBertForSequenceClassification            -> head: classifier(n, pool=classifier_pooling,
    ModernBertForTokenClassification                  transform=act, eps, transform_bias=norm_bias)
                                                      (pool=tokens for the token head)
    ModernBertForQuestionAnswering                 -> head: span(transform=act, eps, transform_bias=norm_bias)

Refused, naming the key: attention_dropout other than 0 (HF drops the attention probabilities
and again the output projection's result; graphspec's attn_dropout is the first only), a
decoder_bias of false, classifier_bias different from norm_bias (graphspec's head has one
`bias`), a rope_type other than default, and the multiple-choice head (`graphspec import --base`
imports the base model).
"""

from __future__ import annotations

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _classes, _head, _seq, _span, num
from graphspec.interchange.hf_import_llm import _pattern

LAYER_TYPES = ("full_attention", "sliding_attention")
BLOCK = '[["norm(attn_norm, first=false)", attn], ["norm(mlp_norm)", mlp]]'
THETA = {"full_attention": 160_000.0, "sliding_attention": 10_000.0}  # ModernBertConfig.default_theta
LEGACY = {"full_attention": "global_rope_theta", "sliding_attention": "local_rope_theta"}
TASK_HEADS = {"ModernBertForMultipleChoice": "a multiple-choice head graphspec does not build (one score per choice "
                                             "of a (B, choices, N) input)"}


def import_modernbert(r: Reader, s: Spec) -> None:
    d, L = r.int("hidden_size"), r.int("num_hidden_layers")
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", L), s.var("h", r.int("num_attention_heads"))
    s.var("d_ff", r.int("intermediate_size"))
    ctx = r.int("max_position_embeddings")
    W = r.int("local_attention")
    s.var("window", W)
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    eps, bias = r.float("norm_eps"), r.bool("norm_bias")
    norm = f"layer_norm({num(eps)}" + ("" if bias else ", bias=false") + ")"
    thetas = _thetas(r)
    drop = r.float("embedding_dropout", default=0)
    s.input = "tokens(seq_len)"
    s.embed = (f"tokens(vocab, dim=d, pos=rope({num(thetas['full_attention'])}, max_len={ctx}), norm={norm}"
               + (f", dropout={num(drop)}" if drop else "") + ")")
    local = "local(window" + ("" if thetas["sliding_attention"] == thetas["full_attention"]
                              else f", pos=rope({num(thetas['sliding_attention'])})") + ")"
    fields = [("dim", "d"), ("heads", "h")]
    masks = _pattern(["global" if t == "full_attention" else local for t in _layer_types(r, L)])
    if masks:
        fields.append(("attention", masks))
    act = _act(r, "hidden_activation")
    mlp_drop = r.float("mlp_dropout", default=0)
    fields += [("norm", norm), ("block", BLOCK),
               ("mlp", f"glu(d_ff, {act}" + (f", drop={num(mlp_drop)}" if mlp_drop else "") + ")")]
    attn_bias, mlp_bias = r.bool("attention_bias"), r.bool("mlp_bias")
    fields += [("bias", False)] if not (attn_bias or mlp_bias) else \
        [("qkv_bias", attn_bias), ("out_bias", attn_bias), ("mlp_bias", mlp_bias)]
    if r.float("attention_dropout", default=0):
        r.error("attention_dropout", f"option attention_dropout = {show(r.raw('attention_dropout'))} is not "
                "expressible in graphspec: HF drops the attention probabilities and again the output projection's "
                "result; graphspec's attn_dropout is the first only", "import with attention_dropout 0 (inference "
                "is the same) and set `attn_dropout:` by hand")
    s.stacks.append(("encoder×L", fields + [("final_norm", True)]))
    heads = {"ModernBertModel": "none", "ModernBertForMaskedLM": _mlm(r, eps, bias), **_classifiers(r, eps, bias)}
    s.head = _head(r, "modernbert", heads, "ModernBertModel", TASK_HEADS)


def _classifiers(r: Reader, eps: float, bias: bool) -> dict[str, str]:
    """ModernBertFor{Sequence,Token}Classification: [CLS] or the mean (classifier_pooling; the
    sequence head only), then ModernBertPredictionHead (dense, classifier_activation, LayerNorm)
    and `classifier`, a Linear with bias."""
    pool = r.str("classifier_pooling", "cls")
    if pool not in ("cls", "mean"):
        r.error("classifier_pooling", f"option classifier_pooling = {show(pool)} is not expressible in graphspec: "
                "ModernBERT pools [CLS] or the mean", "write \"cls\" or \"mean\"")
        pool = "cls"
    n = _classes(r)
    transform = f"transform={_act(r, 'classifier_activation')}, eps={num(eps)}" + \
        ("" if bias else ", transform_bias=false")
    return {"ModernBertForSequenceClassification": f"classifier({n}, pool={pool}, {transform})",
            "ModernBertForTokenClassification": f"classifier({n}, pool=tokens, {transform})",
            "ModernBertForQuestionAnswering": _span(r, "ModernBertForQuestionAnswering", transform)}


def _mlm(r: Reader, eps: float, bias: bool) -> str:
    """ModernBertPredictionHead (dense, activation, LayerNorm) and the decoder, with its bias."""
    if r.bool("classifier_bias") != bias:
        r.error("classifier_bias", f"option classifier_bias = {show(r.raw('classifier_bias'))} beside norm_bias = "
                f"{show(bias)} is not expressible in graphspec: its mlm head has one `bias` for the dense layer and "
                "the LayerNorm", "give classifier_bias the value of norm_bias (the released models: both false)")
    if not r.bool("decoder_bias", True):
        r.error("decoder_bias", "option decoder_bias = false is not expressible in graphspec: its mlm head's "
                "decoder has a bias", "import the base model with `graphspec import --base`")
    act = _act(r, "classifier_activation")
    tied = r.bool("tie_word_embeddings", True)
    return (f"mlm({act}, eps={num(eps)}" + ("" if bias else ", bias=false") + ("" if tied else ", tied=false") + ")")


def _thetas(r: Reader) -> dict[str, float]:
    """Each layer type's RoPE base: rope_parameters (transformers 5) or the legacy
    global_rope_theta / local_rope_theta of the released config.json files."""
    rp = r.raw("rope_parameters")
    legacy = [k for k in LEGACY.values() if k in r.data]
    if legacy and "rope_parameters" in r.data:
        r.error(legacy[0], f"option {legacy[0]} beside rope_parameters is not expressible in graphspec's import",
                "keep one of them (transformers 5 writes rope_parameters per layer type)")
    if rp is None:
        out = {t: r.float(LEGACY[t], minimum=0, default=THETA[t]) for t in LAYER_TYPES}
        for t, theta in out.items():
            if theta == 0:
                r.error(LEGACY[t], f"option {LEGACY[t]} = 0 is not expressible in graphspec: a RoPE base is positive",
                        f"write the base (ModernBERT: {num(THETA[t])})")
        return {t: theta or THETA[t] for t, theta in out.items()}
    if not isinstance(rp, dict) or set(rp) - set(LAYER_TYPES):
        r.error("rope_parameters", f"option rope_parameters = {show(rp)} is not expressible in graphspec's import: "
                "ModernBERT's has one object per layer type, 'full_attention' and 'sliding_attention'",
                "write {\"full_attention\": {...}, \"sliding_attention\": {...}}")
        return dict(THETA)
    out = {}
    for t in LAYER_TYPES:
        p = rp.get(t) or {}
        if not isinstance(p, dict) or set(p) - {"rope_type", "rope_theta"} or p.get("rope_type", "default") != "default":
            r.error("rope_parameters", f"option rope_parameters.{t} = {show(p)} is not expressible in graphspec's "
                    "ModernBERT import: it reads rope_theta with rope_type default", "remove the scaling")
            p = {}
        theta = p.get("rope_theta", THETA[t])
        if not (isinstance(theta, (int, float)) and not isinstance(theta, bool) and theta > 0):
            r.error("rope_parameters", f"rope_parameters.{t}.rope_theta must be a positive number, not {show(theta)}")
            theta = THETA[t]
        out[t] = float(theta)
    return out


def _layer_types(r: Reader, L: int) -> list[str]:
    """layer_types, or ModernBertConfig's from global_attn_every_n_layers (every n-th layer full,
    from layer 0; 3 by default)."""
    lt = r.raw("layer_types")
    if lt is None:
        n = r.int("global_attn_every_n_layers", default=3)
        return ["sliding_attention" if i % n else "full_attention" for i in range(L)]
    if "global_attn_every_n_layers" in r.data:
        r.raw("global_attn_every_n_layers")  # transformers 5 keeps it beside the list it made from it
    if not (isinstance(lt, list) and len(lt) == L and all(t in LAYER_TYPES for t in lt)):
        r.error("layer_types", f"option layer_types = {show(lt)} is not expressible in graphspec's import: it needs "
                f"one of 'full_attention' or 'sliding_attention' per layer ({L})",
                "give one entry per layer, or leave layer_types out (every third layer full)")
        return ["full_attention"] * L
    return lt


# -- export ---------------------------------------------------------------------------------------
def is_modernbert(spec) -> bool:
    """A token encoder with RoPE and a norm on the embedding: ModernBERT's layout."""
    from graphspec.vocab.heads import use_of

    e, st = spec.embed, spec.stacks[0]
    return (e.kind == "tokens" and e.pos == "rope" and st.role == "encoder" and e.norm
            and (spec.head.kind in ("none", "mlm", "span") or spec.head.kind == "classifier"
                 and use_of(spec.head)["pool"] in ("cls", "mean", "tokens")))


TOKEN_IDS = {"pad_token_id": 50283, "eos_token_id": 50282, "sep_token_id": 50282, "bos_token_id": 50281,
             "cls_token_id": 50281}  # ModernBertConfig's, the last of its 50368-token vocabulary's specials


def _token_ids(vocab: int) -> dict:
    """ModernBertConfig's special-token ids where they fit the vocabulary; in a smaller one the same
    places counted from its end (HF's embedding needs pad_token_id < vocab_size: its padding_idx)."""
    if vocab > max(TOKEN_IDS.values()):
        return dict(TOKEN_IDS)
    return {k: max(vocab - (50284 - v), 0) for k, v in TOKEN_IDS.items()}


def modernbert_config(spec, error) -> dict:
    """ModernBertConfig's keys for `spec`; `error(message)` raises. The round trip through the
    importer (hf_export._check_round_trip) checks that they describe the spec node for node."""
    from graphspec.interchange.hf_export import _act as act_of
    from graphspec.interchange.hf_export import _d_ff, _labels, task
    from graphspec.vocab.heads import use_of

    e, st, h = spec.embed, spec.stacks[0], spec.head
    n = sum(st.depths)
    masks = list(st.masks) * n if len(st.masks) == 1 else list(st.masks)
    if any(m.name not in ("global", "local") for m in masks):
        error(f"{spec.name}: masks {sorted({m.name for m in masks})}; a ModernBertConfig's layers are global or local")
    windows = {m["window"] for m in masks if m.name == "local"}
    if len(windows) > 1:
        error(f"{spec.name}: local windows {sorted(windows)}; a ModernBertConfig has one local_attention")
    local_pos = next((m.get("pos") for m in masks if m.name == "local" and m.get("pos") is not None), None)
    if local_pos is not None and local_pos.name != "rope" or any(m.get("pos") is not None for m in masks
                                                                 if m.name == "global"):
        error(f"{spec.name}: a ModernBertConfig's layers rotate with RoPE, the global ones with the embedding's "
              "rope(θ) and the local ones with local(W, pos=rope(θ)); this spec's masks set other positions")
    norm = st.norm_kind
    eps, bias = (norm.get("eps"), norm.get("bias")) if norm is not None else (st.eps, True)
    mlp = st.mlp
    cls = f"ModernBertFor{task(h)}" if task(h) else "ModernBertForMaskedLM" if h.kind == "mlm" else "ModernBertModel"
    cfg = dict(architectures=[cls],
               vocab_size=e.vocab, hidden_size=st.dim, intermediate_size=_d_ff(st), num_hidden_layers=n,
               num_attention_heads=st.heads[0], hidden_activation=act_of(st),
               max_position_embeddings=e.pos_use.get("max_len") or 8192, norm_eps=float(eps), norm_bias=bool(bias),
               attention_bias=bool(st.qkv_bias), mlp_bias=bool(st.mlp_bias), embedding_dropout=float(e.dropout),
               mlp_dropout=float(mlp.get("drop") or 0) if mlp is not None else 0.0,
               attention_dropout=float(st.attn_dropout), local_attention=windows.pop() if windows else 128,
               layer_types=["sliding_attention" if m.name == "local" else "full_attention" for m in masks],
               rope_parameters={t: {"rope_type": "default", "rope_theta": float(p["theta"])}
                                for t, p in (("full_attention", e.pos_use), ("sliding_attention", local_pos or e.pos_use))})
    cfg.update(_token_ids(e.vocab))
    if h.kind == "mlm":
        u = use_of(h)
        cfg.update(classifier_bias=bool(bias), classifier_activation=u["act"].name, decoder_bias=True,
                   tie_word_embeddings=bool(u["tied"]))
    if task(h):  # the transform is ModernBertPredictionHead: classifier_activation, classifier_bias
        u = use_of(h)
        if u["transform"] is None or not u.get("bias", True):
            error(f"{spec.name}: ModernBERT's classifiers pass the pooled vector through its prediction head "
                  "(transform=act) and a Linear with bias; this head has " +
                  ("no transform" if u["transform"] is None else "bias=false"))
        cfg.update(_labels(h), classifier_bias=bool(bias), classifier_activation=u["transform"].name)
        if h.kind == "classifier":
            cfg["classifier_pooling"] = "cls" if u["pool"] == "tokens" else u["pool"]
    return cfg
