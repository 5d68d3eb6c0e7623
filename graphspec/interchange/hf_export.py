"""A spec as a Hugging Face model directory: `config.json`, and `model.safetensors` from weights.

    cfg = to_hf_config(graphspec.load("gpt2"))            # {"model_type": "gpt2", ...}
    export_hf(model, "out/", weights={...})               # out/config.json, out/model.safetensors

`to_hf_config` reads the family off the spec (GPT-2: learned positions and a tied LM head;
BERT: token types and a pooler, or `mlm` for BertForMaskedLM; T5: `lm` for
T5ForConditionalGeneration; ViT: patches and a class token; `names: hf` decoders: Llama,
Mistral (a sliding window), Mixtral (experts), Qwen2 (q/k/v biases only), Qwen3 (`qk_norm`),
Gemma (RMSNorm (1 + w) and a scaled embedding), Gemma-2 (that, with sandwich norms: per-layer
masks as `layer_types`, soft-caps, the logit scale as query_pre_attn_scalar), Phi (a parallel block),
Phi-3 (RMSNorm with a partial rotary fraction or residual dropout; fused qkv_proj / gate_up_proj
weights; without either it is Llama or Mistral, the same model), DeepSeek-V2/V3 (`qkv: mla(...)`;
V3 where the router is sigmoid or RoPE rotates halves); DETR: a ResNet backbone and object
queries, written with transformers' own ResNet and auxiliary_loss false) and writes its config. It then checks
its own answer: the config, imported back (`from_hf_config`), must lower to the same IR as the
spec, node for node (ops, attributes, shapes; source locations aside). A spec that uses a
construct the family's config has no key for (a soft-cap, a per-layer pattern, a free block)
fails that check and is an error, never a config of a different model.

NB: what a spec does not hold is written as HF's default or derived value: RoPE models'
`max_position_embeddings` is `rope(max_len=)` (the context trained for; an imported spec and the
bundled LLMs have it), else max(2048, seq_len) (RoPE has no table); a Mistral without a window
is written as Llama (the same model); token ids as the family's defaults (GPT-2: vocab - 1).

Weights are mapped with graphspec/weights.py (`from_graphspec`), onto the parameter names of
the HF model class built from the config on the meta device (transformers is needed for
that step only), and written as safetensors (no pickle): one model.safetensors, or shards and
model.safetensors.index.json split as save_pretrained(max_shard_size=) splits (`write_hf_weights`).
"""

from __future__ import annotations

import re
from typing import Any

from graphspec.interchange.hf_import import from_hf_config
from graphspec.spec.errors import SpecError
from graphspec.vocab.heads import use_of

ACT_OUT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}
GEMMA_ACT = {"gelu_tanh": "gelu_pytorch_tanh"}


class ExportError(Exception):
    """The spec cannot be written as a Hugging Face config (a user error: exit code 2)."""


def _d_ff(st) -> int:
    mlp = st.mlp
    if mlp is not None and mlp.name == "moe":
        mlp = mlp.get("expert")
    d_ff = mlp.get("d_ff") if mlp is not None else st.d_ff
    return int(d_ff if d_ff is not None else (mlp.get("ratio") if mlp is not None else st.mlp_ratio) * st.dim)


def _act(st) -> str:
    mlp = st.mlp
    if mlp is not None and mlp.name == "moe":
        mlp = mlp.get("expert")
    act = mlp.get("act") if mlp is not None else st.act
    return getattr(act, "name", act)  # a Use of kind `act`, or its name


def task(h) -> str | None:
    """HF's task-head class suffix of a `classifier` on tokens ("TokenClassification" for
    pool=tokens, else "SequenceClassification") or of `span` ("QuestionAnswering"); None for
    another head."""
    if h.kind == "span":
        return "QuestionAnswering"
    if h.kind != "classifier":
        return None
    return "TokenClassification" if use_of(h)["pool"] == "tokens" else "SequenceClassification"


def family(spec) -> str:
    """The Hugging Face `model_type` whose config can describe `spec` (ExportError otherwise)."""
    e, stacks, head = spec.embed, spec.stacks, spec.head
    if len(stacks) == 1:
        st = stacks[0]
        norm = st.norm_kind.name if st.norm_kind is not None else "layer_norm"
        mlp = st.mlp.name if st.mlp is not None else "mlp"
        if e.kind == "tokens" and e.pos == "rope" and st.role == "decoder" and st.names == "hf":
            if st.sinks:  # attention sinks: OpenAI's gpt-oss
                return "gpt_oss"
            from graphspec.interchange.hf_export_llama4 import is_llama4

            if is_llama4(st):  # chunked attention, NoPE temperature, L2 q/k norm, input-weighted experts
                return "llama4_text"
            from graphspec.interchange.hf_olmo3_glm import export_family

            if export_family(st, e):  # OLMo 3's sliding layers; GLM-4.5's sigmoid router without MLA
                return export_family(st, e)
            if st.qkv is not None and st.qkv.name == "mla":  # V3: sigmoid routing, or halves rotated
                routers = {m["router"].name for m in _layer_mlps(st) if m.name == "moe"}
                return "deepseek_v3" if "sigmoid" in routers or not (routers or e.pos_use.get("interleaved")) \
                    else "deepseek_v2"
            if norm == "layer_norm" and st.norm == "parallel":
                return "gptj" if e.pos_use.get("interleaved") else "phi"  # GPT-J rotates interleaved pairs
            if norm == "rms_norm" and st.norm_kind.get("offset") == 1:
                if st.norm == "sandwich":
                    return "gemma3_text" if st.qk_norm == "head" else "gemma2"
                return "gemma"
            if mlp == "moe":
                return "qwen3_moe" if st.qk_norm == "head" else "qwen2_moe" if st.mlp.get("shared_gate") else "mixtral"
            if st.qk_norm == "all" and st.norm == "custom":  # q/k norms over all heads, norms after the sub-layers
                return "olmo2"
            if st.qk_norm == "head":
                return "qwen3"
            longrope = e.pos_use.get("scaling") is not None and e.pos_use["scaling"].name == "longrope"
            if norm == "rms_norm" and (e.pos_use.get("fraction") != 1 or st.dropout or longrope):
                return "phi3"  # partial rotary, residual dropout or LongRoPE: else Llama / Mistral, the same model
            if any(m.get("pos") is not None and m.get("pos").name == "none" for m in st.masks):
                return "smollm3"  # layers without RoPE (no_rope_layers)
            if any(m.name == "sliding" for m in st.masks):
                return "mistral"
            if st.qkv_bias and not st.out_bias:
                return "qwen2"
            return "llama"
        from graphspec.interchange.hf_modernbert import is_modernbert

        if is_modernbert(spec):  # a RoPE encoder with a norm on its embedding
            return "modernbert"
        if e.kind == "tokens" and e.pos == "learned" and st.role == "decoder" and (
                head.kind in ("lm", "none", "span", "classifier")):
            # OPT: positions from 2, counted over the tokens that are not padding (id 1)
            return "opt" if e.pos_use is not None and e.pos_use.get("padding_idx") is not None else "gpt2"
        if e.kind == "tokens" and e.pos == "learned" and st.role == "encoder" and (
                e.proj or head.kind == "discriminator" or head.kind == "classifier" and use_of(head)["pool"] == "cls"
                and use_of(head)["transform_norm"] is False and use_of(head)["transform"].name == "gelu"
                or head.kind == "none" and e.types and st.norm == "post"):
            # a projected embedding, replaced-token detection, ElectraClassificationHead, BERT's body
            # without a pooler (an ELECTRA whose embeddings are as wide; with an MLM head it is BERT's)
            return "electra"
        if e.kind == "tokens" and e.pos == "learned" and st.role == "encoder" and not e.types and e.norm \
                and st.norm == "post" and head.kind in ("none", "mlm", "span", "classifier"):
            return "distilbert"  # BERT's blocks without token types or pooler
        if e.kind == "tokens" and e.pos == "learned" and st.role == "encoder" and (
                head.kind in ("pooler", "mlm", "span")
                or head.kind == "classifier" and use_of(head)["pool"] in ("pooler", "tokens")):
            # fairseq's positions, which skip padding: RoBERTa (XLM-R's is the same config)
            return "roberta" if e.pos_use is not None and e.pos_use.get("padding_idx") is not None else "bert"
        if e.kind == "patches" and not e.cls_token and e.pos == "learned" and len(st.depths) == 1 \
                and head.kind in ("map", "none"):  # SigLIP's vision tower
            return "siglip_vision_model"
        if e.kind == "patches" and e.cls_token and st.layer_scale is not None and len(st.depths) == 1 and (
                head.kind == "none" or head.kind == "classifier" and use_of(head)["pool"] == "cls_mean"):
            # LayerScale: DINOv2 (hf_import_dinov2.py)
            return "dinov2_with_registers" if e.registers else "dinov2"
        if e.kind == "patches" and e.dist_token and len(st.depths) == 1 and head.kind in ("classifier", "pooler"):
            return "deit"  # DeiT's distillation token
        if e.kind == "patches" and e.cls_token and len(st.depths) == 1 and head.kind in ("classifier", "pooler"):
            return "vit"
        if e.kind == "patches" and st.downsample == "patch_merging" and st.attention.kind == "windowed" \
                and head.kind in ("classifier", "none"):
            return "swin"
        if e.kind == "patches" and st.attention.kind == "spatial_reduction" and head.kind in ("classifier", "none"):
            return "pvt"
    if len(stacks) == 2 and e.kind == "tokens" and e.pos == "relative_buckets" and head.kind in ("none", "lm"):
        return "t5"
    if len(stacks) == 2 and spec.backbone is not None and e.kind == "project" and stacks[1].queries \
            and head.kind in ("detection", "none"):
        return "detr"
    raise ExportError(f"{spec.name}: no Hugging Face family graphspec exports describes this spec; exported are "
                      "gpt2, bert, modernbert, vit, swin, pvt, t5, detr, siglip_vision_model, dinov2, dinov2_with_registers and "
                      "the `names: hf` decoders llama, "
                      "mistral, mixtral, "
                      "qwen2, qwen2_moe, qwen3, qwen3_moe, olmo2, gemma, gemma2, gemma3_text, phi, phi3, "
                      "deepseek_v2, deepseek_v3, gpt_oss, llama4_text, olmo3, glm4_moe")


def _gptj(spec) -> dict:
    """GPTJConfig: rotary_dim the rotated share of each head; q, k, v and out_proj without bias,
    the MLP with; an untied LM head with a bias; the sequence classifier `score` without bias."""
    e, st, h = spec.embed, spec.stacks[0], spec.head
    u, hd = use_of(h), st.dim // st.heads[0]
    from graphspec.vocab.positions import rotary_dim

    rot = rotary_dim(e.pos_use, hd)
    mlp = st.mlp
    why = None
    if e.pos_use.get("theta") != 10000 or e.pos_use.get("scaling") is not None or not isinstance(rot, int) or rot % 2:
        why = "its RoPE has θ 10000, no scaling, and rotates an even number of each head's dims"
    elif st.qkv_bias or st.out_bias or st.kv_heads not in (None, st.heads[0]) or st.qk_norm or st.head_dim:
        why = "its attention is multi-head with q, k, v and out_proj without bias, no q/k norm"
    elif mlp is None or mlp.name != "mlp" or st.mlp_bias is False:
        why = "its MLP is fc_in, the activation and fc_out, with biases"
    elif h.kind == "lm" and (h.tied or not u["bias"] or u["softcap"] or u["scale"] is not None):
        why = "its LM head is untied, with a bias (lm(tied=false, bias=true))"
    elif h.kind == "classifier" and (u["pool"], u["bias"], u["transform"]) != ("last", False, None):
        why = "its sequence classifier is `score` without bias on the last token (classifier(n, pool=last, bias=false))"
    elif h.kind not in ("lm", "none", "classifier", "span"):
        why = f"it has no {h.kind} head"
    if why:
        raise ExportError(f"{spec.name}: a GPT-J config cannot describe this spec: {why}")
    arch = f"GPTJFor{task(h)}" if task(h) else "GPTJForCausalLM" if h.kind == "lm" else "GPTJModel"
    return dict(architectures=[arch], **_labels(h), vocab_size=e.vocab, n_positions=e.pos_use.get("max_len") or 2048,
                n_embd=st.dim, n_layer=sum(st.depths), n_head=st.heads[0], rotary_dim=int(rot), n_inner=_d_ff(st),
                activation_function=ACT_OUT.get(mlp["act"].name, mlp["act"].name), resid_pdrop=st.dropout,
                embd_pdrop=e.dropout, attn_pdrop=st.attn_dropout, layer_norm_epsilon=st.norm_kind.get("eps"),
                tie_word_embeddings=False)


def _opt(spec) -> dict:
    """OPTConfig: max_position_embeddings is the table less OPT's offset of 2; the sequence
    classifier `score` without bias on the last token that is not padding."""
    e, st, h = spec.embed, spec.stacks[0], spec.head
    u = use_of(h)
    why = None
    if e.pos_use.get("padding_idx") != 1:
        why = f"its positions start at 2 (padding_idx=1), not {e.pos_use.get('padding_idx') + 1}"
    elif st.norm != "pre" or not st.final_norm or e.norm or e.types or st.attention.kind != "causal":
        why = "it is a causal pre-norm decoder with a final LayerNorm, its embedding without norm or token types"
    elif h.kind == "classifier" and (u["pool"], u["bias"], u["transform"]) != ("last", False, None):
        why = "its sequence classifier is `score` without bias on the last token (classifier(n, pool=last, bias=false))"
    elif h.kind == "classifier" and u["pad_token_id"] != 1:
        why = ("its sequence classifier reads the last token that is not padding, and OPT's pad id is 1 "
               "(classifier(n, pool=last, bias=false, pad_token_id=1))")
    if why:
        raise ExportError(f"{spec.name}: an OPT config cannot describe this spec: {why}")
    arch = f"OPTFor{task(h)}" if task(h) else "OPTForCausalLM" if h.kind == "lm" else "OPTModel"
    return dict(architectures=[arch], **_labels(h), vocab_size=e.vocab, hidden_size=st.dim,
                num_hidden_layers=sum(st.depths), ffn_dim=_d_ff(st), max_position_embeddings=e.max_len - 2,
                num_attention_heads=st.heads[0], activation_function=ACT_OUT.get(_act(st), _act(st)),
                dropout=st.dropout, attention_dropout=st.attn_dropout, enable_bias=bool(st.qkv_bias),
                do_layer_norm_before=True, word_embed_proj_dim=st.dim, tie_word_embeddings=h.kind != "lm" or bool(h.tied),
                pad_token_id=1, bos_token_id=2, eos_token_id=2)


def _gpt2(spec) -> dict:
    e, st, h = spec.embed, spec.stacks[0], spec.head
    if task(h):  # GPT2For{Sequence,Token}Classification, GPT2ForQuestionAnswering
        u, want = use_of(h), {"SequenceClassification": ("last", False), "TokenClassification": ("tokens", True)}
        if u["transform"] is not None or task(h) in want and (u["pool"], u["bias"]) != want[task(h)]:
            raise ExportError(f"{spec.name}: GPT-2's task heads are `score` without bias on the last token, "
                              "`classifier` with bias on every token or `qa_outputs`; this head is "
                              f"{u} (write classifier(n, pool=last, bias=false), classifier(n, pool=tokens) or span)")
    arch = f"GPT2For{task(h)}" if task(h) else "GPT2LMHeadModel" if h.kind == "lm" else "GPT2Model"
    return dict(architectures=[arch], **_labels(h), vocab_size=e.vocab,
                n_positions=e.max_len, n_embd=st.dim, n_layer=sum(st.depths), n_head=st.heads[0], n_inner=_d_ff(st),
                activation_function=ACT_OUT.get(_act(st), _act(st)), resid_pdrop=st.dropout, embd_pdrop=e.dropout,
                attn_pdrop=st.attn_dropout, layer_norm_epsilon=st.eps, tie_word_embeddings=bool(h.tied) or bool(task(h)),
                scale_attn_weights=st.scale is None, bos_token_id=e.vocab - 1, eos_token_id=e.vocab - 1)  # 50256


def _bert(spec, P: str = "Bert") -> dict:
    """BertConfig; `P` "Roberta": RobertaConfig (fairseq's positions from pad_token_id + 1, the MLM
    head's gelu fixed, no next-sentence head, RobertaForCausalLM for a causal encoder)."""
    e, st, h = spec.embed, spec.stacks[0], spec.head
    causal = st.attention.kind == "causal"  # BertLMHeadModel: is_decoder
    if task(h) and (use_of(h)["transform"] is not None or not use_of(h).get("bias", True)):
        raise ExportError(f"{spec.name}: BERT's task heads are a Linear with bias on the pooler or the tokens; this "
                          f"head is {use_of(h)} (a transform is ModernBERT's prediction head)")
    if P == "Roberta" and h.kind == "mlm" and (use_of(h)["nsp"] or use_of(h)["act"].name != "gelu"):
        raise ExportError(f"{spec.name}: RoBERTa's LM head is dense, gelu, LayerNorm and the decoder, without a "
                          f"next-sentence head; this head is {use_of(h)} (write mlm(gelu, eps=...))")
    arch = f"{P}For{task(h)}" if task(h) else f"{P}Model" if h.kind != "mlm" else \
        "BertForPreTraining" if use_of(h)["nsp"] else f"{P}ForCausalLM" if P == "Roberta" and causal \
        else "BertLMHeadModel" if causal else f"{P}ForMaskedLM"
    untied = {"tie_word_embeddings": False} if h.kind == "mlm" and not h.tied else {}  # mlm(tied=false)
    return dict(architectures=[arch], **untied, **({"is_decoder": True} if causal else {}), vocab_size=e.vocab, hidden_size=st.dim, num_hidden_layers=sum(st.depths),
                num_attention_heads=st.heads[0], intermediate_size=_d_ff(st), hidden_act=ACT_OUT.get(_act(st), _act(st)),
                hidden_dropout_prob=st.dropout, attention_probs_dropout_prob=st.attn_dropout,
                max_position_embeddings=e.max_len, type_vocab_size=e.types, layer_norm_eps=st.eps, **_labels(h),
                **({"pad_token_id": e.pos_use.get("padding_idx")} if P == "Roberta" else {}))


def _electra(spec) -> dict:
    """ElectraConfig: BERT's keys, embedding_size the token table's width (projected to
    hidden_size where they differ); the class from the head."""
    e, st, h = spec.embed, spec.stacks[0], spec.head
    u = use_of(h)
    why = None
    if e.pos_use is not None and e.pos_use.get("padding_idx") is not None:
        why = "its positions count from 0 (padding_idx= is RoBERTa's)"
    elif st.norm != "post" or not e.norm or st.attention.kind != "global":
        why = "it is BERT's post-norm encoder, with a LayerNorm on the embedding"
    elif h.kind == "mlm" and (u["nsp"] or not u["bias"] or u["act"].name != "gelu"):
        why = "its generator head is dense, gelu, LayerNorm and the decoder (mlm(gelu, eps=...))"
    elif h.kind == "classifier" and (u["pool"], u["transform"] and u["transform"].name, u["transform_norm"],
                                     u["bias"], u["transform_bias"]) not in (
            ("cls", "gelu", False, True, None), ("tokens", None, None, True, None)):
        why = ("its sequence classifier is dense, gelu and out_proj on [CLS] (classifier(n, pool=cls, "
               "transform=gelu, transform_norm=false)), its token classifier classifier(n, pool=tokens)")
    elif h.kind in ("span",) and u["transform"] is not None or h.kind == "pooler":
        why = "it has no pooler, and its qa_outputs reads the tokens directly"
    elif h.kind not in ("none", "discriminator", "mlm", "classifier", "span"):
        why = f"it has no {h.kind} head"
    elif h.kind == "discriminator" and u["act"].name != _act(st):
        why = "its discriminator's activation is hidden_act, the blocks' one"
    if why:
        raise ExportError(f"{spec.name}: an ELECTRA config cannot describe this spec: {why}")
    arch = f"ElectraFor{task(h)}" if task(h) else {"discriminator": "ElectraForPreTraining",
                                                     "mlm": "ElectraForMaskedLM"}.get(h.kind, "ElectraModel")
    return dict(architectures=[arch], **({"tie_word_embeddings": False} if h.kind == "mlm" and not h.tied else {}),
                vocab_size=e.vocab, embedding_size=e.dim, hidden_size=st.dim, num_hidden_layers=sum(st.depths),
                num_attention_heads=st.heads[0], intermediate_size=_d_ff(st), hidden_act=ACT_OUT.get(_act(st), _act(st)),
                hidden_dropout_prob=st.dropout, attention_probs_dropout_prob=st.attn_dropout,
                max_position_embeddings=e.max_len, type_vocab_size=e.types, layer_norm_eps=st.eps, **_labels(h))


def _distilbert(spec) -> dict:
    """DistilBertConfig: every LayerNorm at ε 1e-12 (HF's code fixes it), the sequence classifier
    pre_classifier, ReLU, classifier on [CLS], the MLM head's activation the blocks'."""
    e, st, h = spec.embed, spec.stacks[0], spec.head
    u, act = use_of(h), ACT_OUT.get(_act(st), _act(st))
    why = None
    if any(eps != 1e-12 for eps in (e.eps, st.eps, *([u["eps"]] if h.kind == "mlm" else []))):
        why = "its LayerNorms' ε is 1e-12 (fixed in HF's DistilBERT)"
    elif h.kind == "mlm" and (u["nsp"] or not u["bias"] or u["act"].name != _act(st)):
        why = "its MLM head is vocab_transform, the blocks' activation, vocab_layer_norm and vocab_projector"
    elif h.kind == "classifier" and (u["pool"], u["transform"] and u["transform"].name, u["transform_norm"],
                                     u["bias"], u["transform_bias"]) not in (
            ("cls", "relu", False, True, None), ("tokens", None, None, True, None)):
        why = ("its sequence classifier is pre_classifier, ReLU and classifier on [CLS] "
               "(classifier(n, pool=cls, transform=relu, transform_norm=false)), its token classifier "
               "classifier(n, pool=tokens)")
    elif h.kind == "span" and u["transform"] is not None:
        why = "its qa_outputs reads the tokens directly"
    if why:
        raise ExportError(f"{spec.name}: a DistilBERT config cannot describe this spec: {why}")
    arch = f"DistilBertFor{task(h)}" if task(h) else "DistilBertForMaskedLM" if h.kind == "mlm" else "DistilBertModel"
    return dict(architectures=[arch], **({"tie_word_embeddings": False} if h.kind == "mlm" and not h.tied else {}),
                vocab_size=e.vocab, max_position_embeddings=e.max_len, sinusoidal_pos_embds=False,
                n_layers=sum(st.depths), n_heads=st.heads[0], dim=st.dim, hidden_dim=_d_ff(st), dropout=st.dropout,
                attention_dropout=st.attn_dropout, activation=act, **_labels(h))


def _roberta(spec) -> dict:
    return _bert(spec, "Roberta")


def _vit(spec) -> dict:
    e, st, h, i = spec.embed, spec.stacks[0], spec.head, spec.input
    cfg = dict(architectures=["ViTForImageClassification" if h.kind == "classifier" else "ViTModel"],
               hidden_size=st.dim, num_hidden_layers=sum(st.depths), num_attention_heads=st.heads[0],
               intermediate_size=_d_ff(st), hidden_act=ACT_OUT.get(_act(st), _act(st)),
               hidden_dropout_prob=e.dropout, attention_probs_dropout_prob=st.attn_dropout, layer_norm_eps=st.eps,
               image_size=i.img_size, patch_size=e.patch, num_channels=i.channels, qkv_bias=bool(st.qkv_bias))
    if h.kind == "classifier":
        cfg.update(num_labels=h.classes, id2label={str(k): f"LABEL_{k}" for k in range(h.classes)},
                   label2id={f"LABEL_{k}": k for k in range(h.classes)})
    return cfg


DEIT_HEADS = {"cls_dist": "DeiTForImageClassificationWithTeacher", "cls": "DeiTForImageClassification"}


def _deit(spec) -> dict:
    """ViT's config; the class from the head: DeiTForImageClassificationWithTeacher (pool=cls_dist),
    DeiTForImageClassification (pool=cls) or DeiTModel (pooler)."""
    h = spec.head
    if h.kind == "classifier" and (use_of(h)["pool"] not in DEIT_HEADS or not use_of(h)["bias"]):
        raise ExportError(f"{spec.name}: DeiT's classifiers are Linear layers with bias on the class token "
                          "(DeiTForImageClassification: pool=cls) or on both it and the distillation token, averaged "
                          f"(DeiTForImageClassificationWithTeacher: pool=cls_dist); this head is {use_of(h)}")
    arch = DEIT_HEADS[use_of(h)["pool"]] if h.kind == "classifier" else "DeiTModel"
    return {**_vit(spec), "architectures": [arch]}


def _table_size(spec) -> int:
    """DINOv2's image_size: the one its position table is for (`learned(grid=g)`: g patches a side)."""
    e, i = spec.embed, spec.input
    g = e.pos_use.get("grid") if e.pos_use is not None else None
    if g is None and i.width and i.width != i.img_size:
        raise ExportError(f"{spec.name}: a Dinov2Config's position table is square; this spec's is for {i.hw}")
    return g * e.patch if g is not None else i.img_size


def _modernbert(spec) -> dict:
    from graphspec.interchange.hf_modernbert import modernbert_config

    def error(message):
        raise ExportError(message)

    return modernbert_config(spec, error)


def _dinov2(spec) -> dict:
    """Dinov2Config / Dinov2WithRegistersConfig: the MLP's width as HF derives it from an integer
    mlp_ratio (SwiGLU: (int(2/3 · D · ratio) + 7) // 8 · 8); use_mask_token false, as the spec has
    none (with registers HF always builds one: to_hf_weights writes it as zeros, HF's own init)."""
    e, st, i = spec.embed, spec.stacks[0], spec.input
    d, d_ff, swiglu = st.dim, _d_ff(st), st.mlp is not None and st.mlp.name == "glu"
    ratio = next((r for r in range(1, 65) if (((int(d * r * 2 / 3) + 7) // 8 * 8) if swiglu else d * r) == d_ff), None)
    if ratio is None:
        raise ExportError(f"{spec.name}: an MLP {d_ff} wide is not one a Dinov2Config describes (mlp_ratio is an "
                          f"integer: {'(int(2/3 · D · ratio) + 7) // 8 · 8' if swiglu else 'D · ratio'})")
    cfg = dict(hidden_size=d, num_hidden_layers=sum(st.depths), num_attention_heads=st.heads[0], mlp_ratio=ratio,
               hidden_act=ACT_OUT.get(_act(st), _act(st)) if not swiglu else "gelu", use_swiglu_ffn=swiglu,
               hidden_dropout_prob=e.dropout, attention_probs_dropout_prob=st.attn_dropout, layer_norm_eps=st.eps,
               image_size=_table_size(spec), patch_size=e.patch, num_channels=i.channels, qkv_bias=bool(st.qkv_bias),
               layerscale_value=st.layer_scale)
    base = "Dinov2WithRegisters" if e.registers else "Dinov2"
    cfg.update(architectures=[f"{base}ForImageClassification" if spec.head.kind == "classifier" else f"{base}Model"],
               **_labels(spec.head))
    if e.registers:
        return dict(num_register_tokens=e.registers, **cfg)
    return dict(use_mask_token=False, **cfg)


def _siglip_vision(spec) -> dict:
    """SiglipVisionModel's config: the head is `map` (vision_use_head) or none; an image the
    patches do not tile is HF's "valid" patch conv, which the importer writes as crop=true."""
    e, st, i = spec.embed, spec.stacks[0], spec.input
    act = _act(st)
    return dict(architectures=["SiglipVisionModel"], hidden_size=st.dim, intermediate_size=_d_ff(st),
                num_hidden_layers=sum(st.depths), num_attention_heads=st.heads[0], num_channels=i.channels,
                image_size=i.img_size, patch_size=e.patch, hidden_act={"gelu_tanh": "gelu_pytorch_tanh"}.get(act, act),
                layer_norm_eps=st.eps, attention_dropout=st.attn_dropout, vision_use_head=spec.head.kind == "map")


def _labels(h) -> dict:
    return dict(num_labels=h.classes, id2label={str(k): f"LABEL_{k}" for k in range(h.classes)},
                label2id={f"LABEL_{k}": k for k in range(h.classes)}) if h.kind == "classifier" else {}


def _swin(spec) -> dict:
    e, st, h, i = spec.embed, spec.stacks[0], spec.head, spec.input
    return dict(architectures=["SwinForImageClassification" if h.kind == "classifier" else "SwinModel"],
                image_size=i.img_size, patch_size=e.patch, num_channels=i.channels, embed_dim=st.dim,
                depths=list(st.depths), num_heads=list(st.heads), window_size=st.attention.window,
                mlp_ratio=float(st.mlp.get("ratio") if st.mlp is not None else st.mlp_ratio),
                qkv_bias=bool(st.qkv_bias), hidden_act=ACT_OUT.get(_act(st), _act(st)), layer_norm_eps=st.eps,
                hidden_dropout_prob=st.dropout, attention_probs_dropout_prob=st.attn_dropout,
                drop_path_rate=st.drop_path, **_labels(h))


def _pvt(spec) -> dict:
    e, st, h, i = spec.embed, spec.stacks[0], spec.head, spec.input
    n = len(st.depths)
    first = [sum(st.depths[:k]) for k in range(n)]  # the first block of each stage
    down = st.down_use.a if st.down_use is not None else {"kernel": 1, "stride": 1}
    return dict(architectures=["PvtForImageClassification" if h.kind == "classifier" else "PvtModel"],
                image_size=i.img_size, num_channels=i.channels, num_encoder_blocks=n, depths=list(st.depths),
                hidden_sizes=list(st.dims or [st.dim] * n), num_attention_heads=list(st.heads),
                sequence_reduction_ratios=[st.masks[b].get("R") for b in first],
                mlp_ratios=_whole([m.get("ratio") for m in st.mlps] if st.mlps else [st.mlp_ratio] * n, "mlp_ratio"),
                patch_sizes=[e.patch] + [down["kernel"]] * (n - 1), strides=[e.patch] + [down["stride"]] * (n - 1),
                hidden_act=ACT_OUT.get(_act(st), _act(st)), layer_norm_eps=float(st.norm_kind.get("eps")),
                qkv_bias=bool(st.qkv_bias), hidden_dropout_prob=st.dropout,
                attention_probs_dropout_prob=st.attn_dropout, drop_path_rate=st.drop_path,
                **(_labels(h) or {"num_labels": 1000}))


def _whole(xs: list, what: str) -> list[int]:
    """PvtConfig holds integer MLP ratios only."""
    if any(float(x) != int(x) for x in xs):
        raise ExportError(f"{what} {xs}: a PVT config holds whole ratios only")
    return [int(x) for x in xs]


def _t5(spec) -> dict:
    e, (enc, dec), h = spec.embed, spec.stacks, spec.head
    lm = {"scale_decoder_outputs": use_of(h)["scale"] is not None} if h.kind == "lm" else {}  # d_model^-0.5
    return dict(architectures=["T5ForConditionalGeneration" if lm else "T5Model"], **lm, vocab_size=e.vocab, d_model=enc.dim,
                d_kv=enc.head_dim or enc.dim // enc.heads[0], d_ff=_d_ff(enc), num_layers=sum(enc.depths),
                num_decoder_layers=sum(dec.depths), num_heads=enc.heads[0],
                relative_attention_num_buckets=e.pos_use.get("num_buckets"),
                relative_attention_max_distance=e.pos_use.get("max_distance"), dropout_rate=enc.dropout,
                layer_norm_epsilon=float(enc.norm_kind.get("eps")), feed_forward_proj="relu",
                is_encoder_decoder=True)


def _detr(spec) -> dict:
    """DetrForObjectDetection / DetrModel with transformers' own ResNet (no timm needed to load it)."""
    (enc, dec), h, bb = spec.stacks, spec.head, spec.backbone
    n = len(bb.layers)
    if dec.aux:
        raise ExportError(f"{spec.name}: its decoder has auxiliary outputs (aux: true, the official DETR's); HF's "
                          "auxiliary_loss decoder norms the states it passes on, a different model. Export the "
                          "same parameters without them: --set decoder.aux=false")
    if bb.dilation:
        raise ExportError(f"{spec.name}: its backbone dilates (DC5); transformers' own ResNet, which this export "
                          "writes so that no timm is needed, has no dilation (DetrConfig.dilation is timm-only)")
    if h.kind == "detection" and h.box_layers != 3:
        raise ExportError(f"{spec.name}: DETR's box MLP has 3 layers, this spec's {h.box_layers}")
    cfg = dict(architectures=["DetrForObjectDetection" if h.kind == "detection" else "DetrModel"],
               use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
               backbone_config=dict(model_type="resnet", depths=list(bb.layers), embedding_size=bb.width,
                                    hidden_sizes=[4 * bb.width * 2 ** i for i in range(n)], layer_type="bottleneck",
                                    hidden_act="relu", downsample_in_first_stage=False, downsample_in_bottleneck=False,
                                    out_features=[f"stage{n}"]),
               d_model=enc.dim, encoder_layers=sum(enc.depths), decoder_layers=sum(dec.depths),
               encoder_attention_heads=enc.heads[0], decoder_attention_heads=dec.heads[0],
               encoder_ffn_dim=_d_ff(enc), decoder_ffn_dim=_d_ff(dec), num_queries=dec.queries,
               activation_function=ACT_OUT.get(_act(enc), _act(enc)), dropout=enc.dropout,
               attention_dropout=enc.attn_dropout, auxiliary_loss=False,
               activation_dropout=float((enc.mlp.get("drop") if enc.mlp is not None else 0) or 0))
    if h.kind == "detection":  # `classes` counts the "no object" logit
        cfg.update(num_labels=h.classes - 1, id2label={str(k): f"LABEL_{k}" for k in range(h.classes - 1)},
                   label2id={f"LABEL_{k}": k for k in range(h.classes - 1)})
    return cfg


def _llm(spec, mt: str) -> dict:
    e, st = spec.embed, spec.stacks[0]
    rope = e.pos_use.a
    cls = {"llama": "Llama", "mistral": "Mistral", "mixtral": "Mixtral", "qwen2": "Qwen2", "qwen3": "Qwen3",
           "gemma": "Gemma", "gemma2": "Gemma2", "phi": "Phi", "phi3": "Phi3", "qwen3_moe": "Qwen3Moe",
           "olmo2": "Olmo2", "qwen2_moe": "Qwen2Moe", "gemma3_text": "Gemma3", "smollm3": "SmolLM3"}[mt]
    hd = st.head_dim or st.dim // st.heads[0]
    cfg = _decoder(spec, f"{cls}ForCausalLM", "Gemma3TextModel" if mt == "gemma3_text" else f"{cls}Model")
    cfg.update(intermediate_size=_d_ff(st), num_key_value_heads=st.kv_heads or st.heads[0])
    if mt != "phi":
        cfg["head_dim"] = hd
        cfg["rms_norm_eps"] = float(st.norm_kind.get("eps"))
    if mt in ("llama", "gemma", "gemma2", "gemma3_text", "qwen3", "qwen3_moe", "olmo2", "smollm3"):
        cfg["attention_bias"] = bool(st.qkv_bias)
    if mt in ("llama", "smollm3"):
        cfg["mlp_bias"] = bool(st.mlp_bias)
    if mt == "smollm3":
        cfg.update(_smollm3(spec))
    if mt == "gemma":
        cfg["hidden_act"] = GEMMA_ACT.get(_act(st), _act(st))
    if mt in ("gemma2", "gemma3_text"):
        cfg["hidden_activation"] = GEMMA_ACT.get(_act(st), _act(st))
        del cfg["hidden_act"]
        cfg.update(_gemma2(spec, hd))
    if mt == "gemma3_text":  # one rope per layer type: the sliding masks' own (or the embedding's), the global one
        local = {str(m.get("pos") or e.pos_use) for m in st.masks if m.name == "sliding"}
        if len(local) > 1 or any(m.get("pos") is not None for m in st.masks if m.name != "sliding"):
            raise ExportError(f"{spec.name}: a Gemma-3 config holds one rope for the sliding layers and the "
                              "embedding's for the global ones; this spec's layers have others")
        slid = next((m.get("pos") for m in st.masks if m.name == "sliding" and m.get("pos") is not None), e.pos_use)
        cfg["rope_parameters"] = {"full_attention": rope_parameters(e.pos_use),
                                  "sliding_attention": rope_parameters(slid)}
    if mt in ("mistral", "mixtral", "phi3"):
        slid = [m for m in st.masks if m.name == "sliding"]
        cfg["sliding_window"] = slid[0].get("window") if slid else None
    if mt == "mixtral":
        cfg.update(num_local_experts=st.mlp.get("experts"), num_experts_per_tok=st.mlp.get("top_k"),
                   router_jitter_noise=0.0)
    if mt == "qwen3_moe":  # every layer sparse; intermediate_size (the dense MLP's) is not built
        cfg.update(num_local_experts=st.mlp.get("experts"), num_experts_per_tok=st.mlp.get("top_k"),
                   moe_intermediate_size=_d_ff(st), norm_topk_prob=bool(st.mlp.get("normalize")),
                   decoder_sparse_step=1, mlp_only_layers=[])
    if mt == "qwen2_moe":  # every layer sparse; intermediate_size (the dense MLP's) written as the shared expert's
        shared = _d_ff(st) * st.mlp.get("shared")
        cfg.update(num_experts=st.mlp.get("experts"), num_experts_per_tok=st.mlp.get("top_k"),
                   moe_intermediate_size=_d_ff(st), shared_expert_intermediate_size=shared, intermediate_size=shared,
                   norm_topk_prob=bool(st.mlp.get("normalize")), qkv_bias=bool(st.qkv_bias), decoder_sparse_step=1,
                   mlp_only_layers=[])
    if mt in ("qwen2", "qwen3", "qwen3_moe", "qwen2_moe"):
        cfg["use_sliding_window"] = False
    if mt == "phi":
        cfg.update(layer_norm_eps=float(st.norm_kind.get("eps")), resid_pdrop=st.dropout, embd_pdrop=e.dropout)
    if mt == "phi3":  # Phi3Model applies no embedding dropout: embd_pdrop stays 0
        cfg.update(resid_pdrop=st.dropout, embd_pdrop=0.0, original_max_position_embeddings=cfg["rope_parameters"].get(
                   "original_max_position_embeddings", cfg["max_position_embeddings"]),  # LongRoPE's, or no scaling
                   pad_token_id=32000 if e.vocab > 32000 else None)  # Phi-3's, where it is a token (padding_idx)
    if mt in ("phi", "phi3"):
        cfg["rope_parameters"]["partial_rotary_factor"] = float(rope["fraction"])
    return cfg


def _smollm3(spec) -> dict:
    """SmolLM3's layers without RoPE: `causal(pos=none)` layers are 0 in no_rope_layers, the
    embedding's rope layers 1; its sliding window (NoPE layers only) is left off."""
    st = spec.stacks[0]
    n = sum(st.depths)
    masks = st.layer_masks()
    if any(m.name != "causal" or (m.get("pos") is not None and m.get("pos").name != "none") for m in masks):
        raise ExportError(f"{spec.name}: a SmolLM3 config holds causal layers with the embedding's rope or none "
                          "(no_rope_layers); this spec's layers have other masks or position schemes")
    rope = [0 if m.get("pos") is not None else 1 for m in masks]
    every = next((k for k in range(1, n + 1) if rope == [int((i + 1) % k != 0) for i in range(n)]), 4)
    return dict(no_rope_layers=rope, no_rope_layer_interval=every, use_sliding_window=False, sliding_window=None,
                pad_token_id=128004 if spec.embed.vocab > 128004 else None)  # SmolLM3's (padding_idx), where a token


def _decoder(spec, lm_class: str, base_class: str) -> dict:
    """The keys every `names: hf` decoder's config has: sizes, activation, tied head, dropout, RoPE."""
    e, st, h = spec.embed, spec.stacks[0], spec.head
    arch = lm_class if h.kind == "lm" else base_class
    if task(h):  # GenericFor{Sequence,Token}Classification (hf_import_llm.DECODER_TASKS)
        from graphspec.interchange.hf_import_llm import task_class

        arch, u = task_class(lm_class, task(h)), use_of(h)
        if arch is None:
            words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", task(h)).lower()  # "question answering"
            raise ExportError(f"{spec.name}: transformers has no {words} model beside {lm_class}; export it with "
                              "head: lm or none")
        if u["transform"] is not None:
            raise ExportError(f"{spec.name}: transformers' decoders put their task Linear on the last hidden state; "
                              f"this head is {u}, with a transform first (ModernBERT's prediction head)")
        if task(h) == "SequenceClassification" and (u["pool"] != "last" or u["bias"]):
            raise ExportError(f"{spec.name}: transformers' decoders classify the last token with a Linear without "
                              f"bias, or every token with a Linear; this head is {u} (write classifier(n, pool=last, "
                              "bias=false) or classifier(n, pool=tokens))")
    labels = _labels(h)
    if task(h) == "TokenClassification" and not h.bias:  # GenericForTokenClassification's score: biased by default
        labels["token_classification_bias"] = False
    return dict(architectures=[arch], **labels, vocab_size=e.vocab, hidden_size=st.dim,
                num_hidden_layers=sum(st.depths), num_attention_heads=st.heads[0],
                hidden_act=ACT_OUT.get(_act(st), _act(st)), tie_word_embeddings=bool(h.tied) and h.kind != "classifier",
                attention_dropout=st.attn_dropout,
                max_position_embeddings=e.pos_use.get("max_len") or max(2048, spec.input.seq_len or 0),
                rope_parameters=rope_parameters(e.pos_use))


def _gpt_oss(spec) -> dict:
    from graphspec.interchange.hf_gpt_oss import GptOssExportError, gpt_oss_config

    try:
        return gpt_oss_config(spec, _decoder)
    except GptOssExportError as err:
        raise ExportError(str(err)) from None


def _layer_mlps(st) -> tuple:
    return st.layer_mlps or (st.mlp,) * sum(st.depths)


def _deepseek(spec, mt: str) -> dict:
    """DeepseekV2 / DeepseekV3: MLA's dims, first_k_dense_replace dense layers, then the MoE layers'
    experts and router (V2: softmax, greedy or group_limited_greedy, never renormalised; V3:
    sigmoid with the correction bias, groups ranked by their best two)."""
    e, st = spec.embed, spec.stacks[0]
    rope, mla, mlps = e.pos_use.a, st.qkv, _layer_mlps(st)
    dense = next((i for i, m in enumerate(mlps) if m.name == "moe"), len(mlps))
    moe = mlps[dense] if dense < len(mlps) else None
    cls = "DeepseekV3" if mt == "deepseek_v3" else "DeepseekV2"
    if not rope.get("interleaved") and mt == "deepseek_v2":
        raise ExportError(f"{spec.name}: DeepseekV2 rotates interleaved pairs; this spec's rope rotates halves "
                          "(rope(interleaved=true), or a sigmoid router: DeepseekV3's rope_interleave false)")
    cfg = _decoder(spec, f"{cls}ForCausalLM", f"{cls}Model")
    cfg.update(num_key_value_heads=st.heads[0], rms_norm_eps=float(st.norm_kind.get("eps")),
               attention_bias=bool(st.qkv_bias), q_lora_rank=mla["q_rank"], kv_lora_rank=mla["kv_rank"],
               qk_nope_head_dim=mla["nope_dim"], qk_rope_head_dim=mla["rope_dim"], v_head_dim=mla["v_dim"],
               first_k_dense_replace=dense)
    if dense:
        cfg["intermediate_size"] = int(mlps[0].get("d_ff"))
    if mt == "deepseek_v3":
        cfg["rope_interleave"] = bool(rope.get("interleaved"))
    if moe is not None:
        r = moe["router"]
        if mt == "deepseek_v2" and moe["normalize"]:
            raise ExportError(f"{spec.name}: DeepseekV2's router does not renormalise its top-k weights; "
                              "this spec's moe(..., normalize=true) does (write normalize=false)")
        ff = int(moe["expert"].get("d_ff"))
        cfg.update(n_routed_experts=moe["experts"], num_experts_per_tok=moe["top_k"], moe_intermediate_size=ff,
                   n_shared_experts=moe["shared"], routed_scaling_factor=float(r["scale"]), n_group=r["groups"],
                   topk_group=r["topk_groups"], norm_topk_prob=bool(moe["normalize"]))
        if not dense:
            cfg["intermediate_size"] = ff * max(1, moe["shared"])  # the dense MLP's: no layer has one
        if mt == "deepseek_v2":
            cfg["topk_method"] = "group_limited_greedy" if r["groups"] > 1 else "greedy"
    return cfg


def _llama4(spec) -> dict:
    """Llama4TextConfig (graphspec/interchange/hf_export_llama4.py)."""
    from graphspec.interchange.hf_export_llama4 import llama4_config

    def error(message):
        raise ExportError(message)

    return llama4_config(spec, _decoder, error)


def _olmo3_glm(spec, mt: str) -> dict:
    """Olmo3Config / Glm4MoeConfig (graphspec/interchange/hf_olmo3_glm.py)."""
    from graphspec.interchange.hf_olmo3_glm import glm4_moe_config, olmo3_config

    def error(message):
        raise ExportError(message)

    return olmo3_config(spec, _decoder, rope_parameters, error) if mt == "olmo3" else \
        glm4_moe_config(spec, _decoder, error)


def rope_parameters(rope) -> dict:
    """HF's rope_parameters of a `rope(...)` use: rope_theta, and the rope_type and numbers of its
    `scaling` (graphspec/vocab/positions.py; the inverse of the importer's SCALING_KEYS)."""
    from graphspec.interchange.hf_import_llm import SCALING_KEYS

    out: dict[str, Any] = {"rope_theta": float(rope["theta"]), "rope_type": "default"}
    sc = rope.get("scaling")
    if sc is not None and sc.name != "none":
        out["rope_type"] = sc.name
        for hf, arg in SCALING_KEYS[sc.name].items():
            if sc.get(arg) is not None:
                out[hf] = list(sc[arg]) if isinstance(sc[arg], tuple) else sc[arg]  # LongRoPE's factor lists
    return out


def _gemma2(spec, head_dim: int) -> dict:
    """Gemma-2's per-layer masks (`layer_types` and the one `sliding_window`), soft-caps and logit
    scale (query_pre_attn_scalar: scale^-2, head_dim by default)."""
    st = spec.stacks[0]
    masks = st.layer_masks()
    windows = [m.get("window") for m in masks if m.name == "sliding"]
    if len(set(windows)) > 1:
        raise ExportError(f"{spec.name}: its layers slide over windows {sorted(set(windows))}; a Gemma-2 config "
                          "holds one sliding_window for every 'sliding_attention' layer")
    q = head_dim if st.scale is None else st.scale ** -2
    if abs(q - round(q)) > 1e-6 * q:
        raise ExportError(f"{spec.name}: attention scale {st.scale} is not n**-0.5 for a whole n; a Gemma-2 config "
                          "holds the scale as query_pre_attn_scalar (an integer)")
    return dict(layer_types=["sliding_attention" if m.name == "sliding" else "full_attention" for m in masks],
                sliding_window=windows[0] if windows else 4096,  # HF's default where no layer slides
                query_pre_attn_scalar=round(q), attn_logit_softcapping=st.softcap,
                final_logit_softcapping=spec.head.softcap)


def to_hf_config(model) -> dict:
    """The Hugging Face config (a JSON-able dict) of `model` (graphspec.Model), checked by
    importing it back: ExportError where the config would describe another model."""
    spec = model.spec
    mt = family(spec)
    cfg = {"model_type": mt, **(_llm(spec, mt) if mt in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe",
                                                         "qwen2_moe", "olmo2", "gemma", "gemma2", "gemma3_text", "phi",
                                                         "phi3", "smollm3")
                                 else _gptj(spec) if mt == "gptj"
                                 else _deepseek(spec, mt) if mt in ("deepseek_v2", "deepseek_v3")
                                 else _llama4(spec) if mt == "llama4_text"
                                 else _olmo3_glm(spec, mt) if mt in ("olmo3", "glm4_moe")
                                 else _gpt_oss(spec) if mt == "gpt_oss"
                                 else _modernbert(spec) if mt == "modernbert"
                                 else {"gpt2": _gpt2, "bert": _bert, "roberta": _roberta, "distilbert": _distilbert, "electra": _electra, "opt": _opt, "vit": _vit, "deit": _deit, "swin": _swin, "pvt": _pvt,
                                       "t5": _t5, "detr": _detr, "siglip_vision_model": _siglip_vision,
                                       "dinov2": _dinov2, "dinov2_with_registers": _dinov2}[mt](spec))}
    h = spec.head
    if h.kind == "classifier" and use_of(h)["pool"] == "last":  # GenericForSequenceClassification's padding
        cfg["pad_token_id"] = use_of(h)["pad_token_id"]  # (None: the last position; HF then refuses batches > 1)
    _check_round_trip(model, cfg)
    return cfg


def _ir_lines(graph) -> list[str]:
    lines = str(graph).splitlines()[1:]
    return [re.sub(r"\s+#.*$", "", ln) for ln in lines]


def _check_round_trip(model, cfg: dict) -> None:
    import tempfile
    from pathlib import Path

    import graphspec

    try:
        text = from_hf_config(cfg, name=model.spec.name)
    except SpecError as e:
        raise ExportError(f"{model.spec.name}: the {cfg['model_type']} config graphspec would write is not one it "
                          f"can read back:\n{e}") from None
    i = model.spec.input
    sets = [f"batch={i.batch}"] + ([f"seq_len={i.seq_len}"] + ([f"tgt_len={i.tgt_len}"] if "tgt_len=" in text else [])
                                   if i.kind == "tokens" else [])
    if cfg["model_type"].startswith("dinov2"):  # the table's size is the config's; the input is the spec's
        sets += [f"img_size={i.img_size}"]
    if cfg["model_type"] == "detr":  # the importer writes detr_r50's 800×1066
        sets += [f"height={i.hw[0]}", f"width={i.hw[1]}"]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "imported.yaml"
        p.write_text(text)
        try:
            back = graphspec.load(p, sets)
        except SpecError as e:
            raise ExportError(f"{model.spec.name}: the {cfg['model_type']} config graphspec would write does not "
                              f"load back at this input size:\n{e}") from None
    a, b = _ir_lines(model.graph), _ir_lines(back.graph)
    if a != b:
        diff = next((f"spec: {x}\n  config: {y}" for x, y in zip(a, b, strict=False) if x != y),
                    f"{len(a)} nodes in the spec, {len(b)} from the config")
        raise ExportError(f"{model.spec.name}: a {cfg['model_type']} config cannot describe this spec exactly; "
                          f"the first difference in the IR:\n  {diff}")


def hf_model_class(cfg: dict):
    import transformers

    return getattr(transformers, cfg["architectures"][0])


def hf_like(cfg: dict) -> tuple[dict[str, Any], set[str]]:
    """The HF model's state dict for `cfg`, on the meta device (names and shapes, no memory), and
    its tied keys: second names of one tensor (GPT-2's `lm_head`, T5's `embed_tokens`), which
    HF's save_pretrained leaves out as well."""
    import torch
    import transformers

    config = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = hf_model_class(cfg)(config)
    sd = model.state_dict()
    own = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    return sd, set(sd) - own


def weight_family(mt: str) -> str:
    from graphspec.weights import HF_FAMILIES

    return HF_FAMILIES.get(mt, "llama")


def to_hf_weights(state: dict, graph, cfg: dict) -> dict:
    """graphspec-named tensors (of `graph`'s parameters) -> the HF model's names, checked against
    the HF model's own keys (ExportError names what is missing or left over)."""
    from graphspec.weights import UNREAD, WeightError, from_graphspec

    like, tied = hf_like(cfg)
    try:
        out = from_graphspec(state, graph, weight_family(cfg["model_type"]),
                             like={k: v for k, v in like.items() if k not in tied})
    except (WeightError, KeyError) as e:
        raise ExportError(f"the weights do not fit the {cfg['model_type']} model: {e}") from None
    unread = UNREAD.get(weight_family(cfg["model_type"]), ())
    for k in like:
        if k not in out and k.endswith(unread):
            import torch

            out[k] = torch.zeros(tuple(like[k].shape))
    missing = sorted(set(like) - set(out) - tied)
    extra = sorted(set(out) - set(like))
    if missing or extra:
        raise ExportError(f"the weights do not fit {cfg['architectures'][0]}: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in out.items():
        if tuple(v.shape) != tuple(like[k].shape):
            raise ExportError(f"weight {k}: shape {tuple(v.shape)}, {cfg['architectures'][0]} wants {tuple(like[k].shape)}")
    return {k: out[k] for k in like if k in out}  # the HF model's state-dict order: save_pretrained shards in it


# -- writing the weights as save_pretrained does ---------------------------------------------
SIZE_UNITS = {"TB": 10**12, "GB": 10**9, "MB": 10**6, "KB": 10**3}  # huggingface_hub's: powers of 10
DEFAULT_SHARD_SIZE = "50GB"  # transformers 5's save_pretrained(max_shard_size=...) (huggingface_hub's own: 5GB)
INDEX = "model.safetensors.index.json"


def shard_size(size: int | str) -> int:
    """Bytes of a max shard size as save_pretrained takes it: an int (or digits) of bytes, or a
    number and a unit the way huggingface_hub's parse_size_to_int reads it ("5GB", "500MB",
    "1.5gb": TB, GB, MB, KB in powers of 10). ValueError, saying what is accepted, otherwise."""
    text = str(size).strip()
    try:
        n = int(text) if text.isdigit() else int(float(text[:-2].strip()) * SIZE_UNITS[text[-2:].upper()])
    except (KeyError, ValueError, OverflowError):
        n = 0
    if n < 1:
        raise ValueError(f"{str(size)!r} is not a size: write a number of bytes or a number with a unit "
                         "TB, GB, MB or KB, e.g. 5GB or 500MB (as save_pretrained's max_shard_size)")
    return n


def shards(tensors: dict, max_bytes: int) -> dict[str, list[str]]:
    """File name -> tensor names, split as save_pretrained splits (huggingface_hub's
    split_state_dict_into_shards): in order, a new shard where the next tensor would tip the
    current one over `max_bytes`; a tensor larger than `max_bytes` gets a shard of its own, placed
    before the one being filled. One shard is model.safetensors; n are
    model-0000i-of-0000n.safetensors. A tensor's size is its bytes on disk (numel × itemsize)."""
    done: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for k, v in tensors.items():
        n = v.numel() * v.element_size()
        if n > max_bytes:
            done.append([k])
            continue
        if size + n > max_bytes:
            done.append(cur)
            cur, size = [], 0
        cur.append(k)
        size += n
    if cur or not done:
        done.append(cur)
    if len(done) == 1:
        return {"model.safetensors": done[0]}
    return {f"model-{i + 1:05d}-of-{len(done):05d}.safetensors": names for i, names in enumerate(done)}


def hf_num_parameters(cfg: dict) -> int:
    """The HF model's `num_parameters()` (on the meta device): its parameters, tied ones once,
    no buffers (DETR's frozen BatchNorm statistics are in its state dict, not in this count)."""
    import torch
    import transformers

    with torch.device("meta"):
        return hf_model_class(cfg)(transformers.AutoConfig.for_model(**cfg)).num_parameters()


def write_hf_weights(directory, tensors: dict, cfg: dict, max_shard_size: int | str = DEFAULT_SHARD_SIZE) -> list[str]:
    """`tensors` (HF names, state-dict order, from to_hf_weights) as safetensors files in
    `directory`, with model.safetensors.index.json when there is more than one: {"metadata":
    {"total_parameters", "total_size"}, "weight_map": name -> file}, as transformers 5's
    save_pretrained writes it. Tied weights are not in `tensors` (to_hf_weights leaves them
    out), so each is written once. The caller publishes `directory` atomically. Returns the file
    names written."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    files = shards(tensors, shard_size(max_shard_size))
    for name, keys in files.items():
        save_file({k: tensors[k].contiguous() for k in keys}, str(Path(directory) / name), metadata={"format": "pt"})
    if len(files) == 1:
        return list(files)
    index = {"metadata": {"total_parameters": hf_num_parameters(cfg),
                          "total_size": sum(v.numel() * v.element_size() for v in tensors.values())},
             "weight_map": {k: name for name, keys in files.items() for k in keys}}
    (Path(directory) / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return [*files, INDEX]


def to_graphspec_weights(sd: dict, graph, mt: str) -> dict:
    """A Hugging Face state dict (from model.safetensors) named as `graph`'s parameters; every
    parameter found with its shape, every HF tensor used (ExportError otherwise)."""
    from graphspec.analysis import tensors
    from graphspec.weights import (
        UNREAD,
        WeightError,
        fused_experts,
        name_map,
        split_swiglu,
        to_graphspec,
    )

    fam = weight_family(mt)
    try:
        sd = fused_experts(sd) if fam == "llama" else sd  # Mixtral / Qwen3-MoE checkpoints: one tensor per expert
        sd = split_swiglu(sd) if fam == "dinov2" else sd  # DINOv2-giant before transformers 5: weights_in / _out
        out = to_graphspec(sd, graph, fam)
        used = {n for names in name_map(graph, fam, like=sd).values() for n in names}
    except (WeightError, KeyError) as e:
        raise ExportError(f"the Hugging Face weights do not fit {graph.name}: {e}") from None
    unread = {k for k in sd if k.endswith(UNREAD.get(fam, ()))}
    extra = sorted(set(sd) - used - unread - {"lm_head.weight"})
    if extra:
        raise ExportError(f"the Hugging Face weights have tensors {graph.name} has no place for: {extra[:5]}")
    for k, shape in tensors(graph).items():
        if k in out and tuple(out[k].shape) != tuple(int(d) for d in shape):
            raise ExportError(f"weight {k}: shape {tuple(out[k].shape)}, {graph.name} wants {tuple(shape)}")
    return out
