"""Output heads (`head: lm(tied=true)`, `classifier(1000, pool=mean)`, `mlm(gelu, eps=1e-12)`).

A head reads the last stack's output `x` (B, N, d) (or a CNN's map) and gives the model's
outputs. Context of a head's lowering: `HeadAt(spec, taps)`, the spec (its embedding's vocab
and the name of the token table a tied head shares) and the per-layer outputs some heads decode
(DETR's decoder layers, SETR's MLA streams). A head returns the graph's outputs (BERT's `pooler`: the
sequence output, then the pooled one).

`head:` is read as a call form with `graphspec.spec.reader._Reader.call` (so that `--set
head.classes=21841` may repeat a positional argument by name), then each argument is checked
against its `Arg` here (`read`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphspec.vocab.registry import CLASS_DOCS, KINDS, REQUIRED, Arg, Use, construct


@dataclass(frozen=True)
class HeadAt:
    spec: Any  # graphspec.spec.ModelSpec
    taps: list[str] = field(default_factory=list)  # per-layer outputs (DETR, SETR-MLA); [] otherwise


def _tied_name(spec) -> str:
    """The token table a tied head reads: `embed_tokens` at the root under `names: hf`."""
    from graphspec.lower import _flat_embedding

    return "embed_tokens" if _flat_embedding(spec) else "embed.tokens"


def _check_lm(a: dict) -> list:
    if a["tied"] is True and a["bias"] is True:  # the shared weight is the embedding's, which has no bias
        return [("bias", "a tied LM head has no bias of its own (it reuses the token embedding's weight)",
                 "write lm(tied=false, bias=true) or lm(tied=true)")]
    return []


@construct("head", "lm", Arg("tied", bool, True, doc="share the token embedding's weight (counted once)"),
           Arg("bias", bool, False, doc="a bias of size vocab (untied heads only)"),
           Arg("softcap", float, None, minimum=1e-6, doc="tanh(z / cap)·cap on the logits (Gemma 2)"),
           Arg("scale", float, None, doc="multiply the final hidden state by this before the "
               "projection (T5: d_model**-0.5)"),
           check=_check_lm, example="head: lm(tied=true)")
def lm(b, use, ctx, x):
    """Logits over the vocabulary: Linear d -> vocab, tied to the token embedding (Vaswani §3.4,
    GPT) or its own; `scale` first multiplies the hidden state (T5ForConditionalGeneration's
    d_model^-0.5 before its tied head), `softcap` caps the logits (Gemma 2 §2)."""
    spec, dim = ctx.spec, b.shape(x)[-1]
    if use["scale"] is not None:  # NB: elementwise, no MAC under `macs` (one per element under `all`)
        x = b.emit("scale", (x,), "lm_scale", k=use["scale"])
    if use["tied"]:
        y = b.emit("linear", (x,), "lm_head", out_features=spec.embed.vocab, bias=use["bias"], in_features=dim,
                   weights=_tied_name(spec))
    else:
        y = b.emit("linear", (x,), "lm_head", out_features=spec.embed.vocab, bias=use["bias"], in_features=dim)
    if use["softcap"]:  # final logit soft-capping, tanh(z / cap)·cap (Gemma 2 §2; HF final_logit_softcapping)
        y = b.emit("softcap", (y,), "logits", cap=use["softcap"])
    return (y,)


CLASS_DOCS["PredictionHead"] = ("The transform before a classifier (HF's ModernBertPredictionHead): dense, "
                                "activation, LayerNorm.")
CLASS_DOCS["PreClassifier"] = "The transform before a classifier without a norm (DistilBERT's pre_classifier): " \
                              "dense, activation."
POOLS = ("cls", "mean", "last", "tokens", "cls_mean", "pooler", "cls_dist")


def _check_classifier(a: dict) -> list:
    if a.get("pad_token_id") is not None and a["pool"] != "last":
        return [("pad_token_id", f"pad_token_id= picks the last token that is not padding, and pool={a['pool']} "
                 "reads no last token", "write classifier(n, pool=last, pad_token_id=...), or leave pad_token_id out")]
    if a["transform"] is not None and a["pool"] == "cls_dist":
        return [("transform", "pool=cls_dist is DeiT's two classifiers on the class and distillation tokens, "
                 "which have no transform before them", "leave transform= out")]
    if a["transform"] is None and a.get("transform_norm") is not None:
        return [("transform_norm", "transform_norm= sets the transform before the classifier, and this head has none",
                 "add transform=relu (DistilBERT's pre_classifier), or leave it out")]
    if a.get("transform_norm") is False and a["eps"] is not None:
        return [("eps", "eps= is the transform's LayerNorm ε, and transform_norm=false leaves the LayerNorm out",
                 "leave eps= out")]
    if a["transform"] is None and (a["eps"] is not None or a["transform_bias"] is not None):
        return [("eps" if a["eps"] is not None else "transform_bias", "eps= and transform_bias= set the transform "
                 "before the classifier, and this head has none", "add transform=gelu (ModernBERT's head), or "
                 "leave them out")]
    if a["transform"] is not None and a["pool"] == "pooler":
        return [("transform", "pool=pooler already passes [CLS] through BERT's dense and tanh",
                 "write either pool=pooler (BERT) or transform=... with pool=cls or mean (ModernBERT)")]
    return []


TRANSFORM = (Arg("transform", "act", None, doc="first dense d -> d, this activation and a LayerNorm (ModernBERT's "
                 "head)"),
             Arg("eps", float, None, minimum=0, doc="the transform's LayerNorm ε (default 1e-5)"),
             Arg("transform_bias", bool, None, doc="the transform's dense and LayerNorm biases (default true)"),
             Arg("transform_norm", bool, None, doc="the transform's LayerNorm (default true; false: dense and "
                 "activation only, DistilBERT's pre_classifier)"))


@construct("head", "classifier", Arg("classes", int, 1000, minimum=1, doc="number of classes; default the "
                                     "spec's `classes` variable, else 1000"),
           Arg("pool", str, "cls", choices=POOLS, doc="what is classified: the class token (cls, ViT), the token "
               "mean (mean, Swin), the last token (last, a decoder's sequence classification), every token "
               "(tokens: token classification), [class] beside the patch mean (cls_mean, DINOv2), BERT's pooler "
               "tanh(W h_[CLS] + b) (pooler), or the mean of DeiT's classifiers on [class] and the distillation "
               "token (cls_dist)"),
           Arg("bias", bool, True, doc="the classifier's bias (false: Llama's `score`)"),
           Arg("pad_token_id", int, None, minimum=0, doc="with pool=last: read each row's last token whose id is "
               "not this one (HF's decoders with a pad_token_id; left or right padding) instead of the last position"),
           *TRANSFORM,
           hooks={"defaults": lambda env: {"classes": env.get("classes", 1000)}}, check=_check_classifier,
           example="head: classifier(10, pool=mean)")
def classifier(b, use, ctx, x):
    """Linear d -> classes on what `pool` picks: the class token (`cls`, ViT), the token mean
    (`mean`, Swin), the last position (`last`: HF's ...ForSequenceClassification of a decoder,
    `score` without bias; with `pad_token_id`, each row's last token that is not padding, as HF
    reads it when its config has a pad_token_id), every token (`tokens`: ...ForTokenClassification), [class] ‖ the mean of the patch
    tokens (`cls_mean`, Dinov2ForImageClassification: Linear 2d -> classes; registers are not
    averaged), BERT's pooler (`pooler`, BertForSequenceClassification), or DeiT's two classifiers
    (`cls_dist`, Touvron et al. 2021 §4: `head` on [class] and `head_dist` on the distillation token,
    averaged at inference, as the official model and DeiTForImageClassificationWithTeacher do). `transform=act`:
    ModernBertPredictionHead (dense, act, LayerNorm) between the pooling and the classifier. On a
    CNN's map, global average pooling and torchvision's `fc`. The linear is `head` (timm's name),
    `score` under `names: hf` (HF's decoders)."""
    from graphspec.spec.errors import SpecError

    if len(b.shape(x)) == 4:  # a CNN: global average pool, torchvision's `fc`
        if use["pool"] not in ("cls", "mean") or use["transform"] is not None:
            raise SpecError.at(use.loc or b.loc, f"classifier(pool={use['pool']}) pools tokens; this model ends in "
                               "a feature map, which the classifier averages", "leave pool= and transform= out")
        pooled = b.emit("global_pool", (x,), "avgpool")
        return (b.emit("linear", (pooled,), "fc", out_features=use["classes"], bias=use["bias"],
                       in_features=b.shape(x)[1]),)
    spec, pool, dim = ctx.spec, use["pool"], b.shape(x)[-1]
    if pool == "cls_mean" and not spec.embed.cls_token:
        raise SpecError.at(use.loc or b.loc, "pool=cls_mean reads the class token, and this embedding has none",
                           "write pool=mean, or embed with cls_token=true")
    if pool == "cls_dist" and not spec.embed.dist_token:
        raise SpecError.at(use.loc or b.loc, "pool=cls_dist averages the classifiers of the class and the "
                           "distillation tokens, and this embedding has no distillation token",
                           "embed with patches(..., cls_token=true, dist_token=true), or write pool=cls")
    if pool == "cls_dist":  # DeiT⚗: (head(x[:, 0]) + head_dist(x[:, 1])) / 2
        y = [b.emit("linear", (b.emit("select", (x,), f"{t}_tok", index=i),), name, out_features=use["classes"],
                    bias=use["bias"], in_features=dim) for i, (t, name) in enumerate([("cls", "head"), ("dist", "head_dist")])]
        return (b.emit("scale", (b.emit("add", tuple(y), "logits_sum"),), "logits", k=0.5),)
    if pool == "pooler":
        _, pooled = pooler(b, use, ctx, x)
    elif pool == "cls_mean":  # Dinov2ForImageClassification: [class] ‖ mean of the patch tokens
        skip = 1 + int(spec.embed.dist_token) + (spec.embed.registers or 0)
        cls = b.emit("select", (x,), "cls", index=0)
        mean = b.emit("mean", (x,), "patch_mean", skip=skip)
        pooled = b.emit("concat", (cls, mean), "pool", dim=1)
        dim = 2 * dim
    elif pool == "last" and use["pad_token_id"] is not None:
        pooled = b.emit("last_token", (x, _token_ids(b, use, spec)), "pool", pad=use["pad_token_id"])
    elif pool in ("cls", "last"):
        pooled = b.emit("select", (x,), "pool", index=0 if pool == "cls" else -1)
    elif pool == "mean":
        pooled = b.emit("mean", (x,), "pool", dim=1)
    else:  # tokens: every position
        pooled = x
    pooled = _transform(b, use, ctx, pooled, dim)
    name = "score" if spec.stacks and spec.stacks[0].names == "hf" else "head"
    return (b.emit("linear", (pooled,), name, out_features=use["classes"], bias=use["bias"], in_features=dim),)


def _token_ids(b, use, spec) -> str:
    """The graph's token ids (B, N), which `pad_token_id` compares: the one token input."""
    from graphspec.spec.errors import SpecError

    ids = [n.name for n in b.g if n.op == "input" and n.a.get("kind") == "tokens"]
    if len(ids) != 1:
        raise SpecError.at(use.loc or b.loc, "pad_token_id= compares the token ids, and this model has "
                           + ("none (its input is not tokens)" if not ids else f"{len(ids)} token inputs"),
                           "leave pad_token_id out")
    if spec.embed.vocab is not None and use["pad_token_id"] >= spec.embed.vocab:
        raise SpecError.at(use.loc or b.loc, f"pad_token_id={use['pad_token_id']} is not a token of this "
                           f"vocabulary of {spec.embed.vocab}", f"write a pad_token_id below {spec.embed.vocab}")
    return ids[0]


def _transform(b, use, ctx, x, dim):
    """`transform=act`: ModernBertPredictionHead (module `transform`: dense, act, LayerNorm), or x."""
    if use["transform"] is None:
        return x
    bias, norm = use["transform_bias"] is not False, use.get("transform_norm") is not False
    with b.module("transform", "PredictionHead" if norm else "PreClassifier", dim=dim, act=use["transform"].name):
        h = b.emit("linear", (x,), "dense", out_features=dim, bias=bias, in_features=dim)
        h = use["transform"].lower(b, ctx, h)
        if not norm:  # DistilBertForSequenceClassification: pre_classifier, ReLU
            return h
        return b.emit("layer_norm", (h,), "norm", dim=dim, eps=use["eps"] if use["eps"] is not None else 1e-5,
                      **({} if bias else {"bias": False}))


def _check_span(a: dict) -> list:
    return _check_classifier({**a, "pool": "tokens"})


@construct("head", "span", *TRANSFORM, check=_check_span, example="head: span")
def span(b, use, ctx, x):
    """Extractive question answering (HF's ...ForQuestionAnswering, SQuAD's span head; Devlin et
    al. §4.2): a Linear d -> 2 on every token (`qa_outputs`), whose two columns are the start and
    the end logits, (B, N) each, returned in that order. `transform=act`: ModernBertPredictionHead
    first (ModernBertForQuestionAnswering)."""
    from graphspec.spec.errors import SpecError

    if len(b.shape(x)) != 3:
        raise SpecError.at(use.loc or b.loc, "span scores tokens; this model ends in a feature map",
                           "use head: classifier(...) on a CNN")
    dim = b.shape(x)[-1]
    h = _transform(b, use, ctx, x, dim)
    y = b.emit("linear", (h,), "qa_outputs", out_features=2, bias=True, in_features=dim)
    return (b.emit("select", (y,), "start_logits", index=0, dim=-1),
            b.emit("select", (y,), "end_logits", index=1, dim=-1))


@construct("head", "pooler", example="head: pooler")
def pooler(b, use, ctx, x):
    """BERT's pooler tanh(W h_[CLS] + b) (Devlin et al. §3), returned beside the sequence output."""
    dim = b.shape(x)[-1]
    with b.module("pooler", "Pooler", dim=dim):
        first = b.emit("select", (x,), "first", index=0)
        y = b.emit("linear", (first,), "dense", out_features=dim, bias=True, in_features=dim)
        y = b.emit("tanh", (y,), "act")
    return (x, y)


@construct("head", "none", example="head: none")
def none(b, use, ctx, x):
    """No head: the last stack's output (after its final norm, if any)."""
    return (x,)


@construct("head", "detection", Arg("classes", int, 92, minimum=1, doc="class logits, with DETR's 'no object'"),
           Arg("box_layers", int, 3, minimum=1, doc="layers of the box MLP"),
           example="spec: detr_r50")
def detection(b, use, ctx, x):
    """DETR's prediction FFNs (Carion et al. 2020 §3.2): class logits and a box MLP with a
    sigmoid, for the last decoder layer (and every layer with auxiliary outputs)."""
    from graphspec.lower_cnn import detection_head

    return tuple(detection_head(b, ctx.spec, ctx.taps or [x]))


@construct("head", "segmentation", Arg("classes", int, 150, minimum=1, doc="segmentation classes (ADE20K: 150)"),
           Arg("decoder", str, "naive", choices=("naive", "pup", "mla"), doc="SETR's decoder (§3.3)"),
           Arg("channels", int, 256, minimum=1, doc="the decoder's width"),
           example="spec: setr_naive")
def segmentation(b, use, ctx, x):
    """SETR's convolutional decoder back to the image resolution (Zheng et al. 2021 §3.3)."""
    from graphspec.lower_cnn import segmentation_head

    return (segmentation_head(b, ctx.spec, ctx.taps or [x], b.g.meta["grid"]),)


@construct("head", "mlm", Arg("act", "act", "gelu"), Arg("eps", float, 1e-12, minimum=0, doc="the LayerNorm's ε"),
           Arg("tied", bool, True, doc="decode through the token embedding's weight (else a decoder of its own)"),
           Arg("nsp", bool, False, doc="also BERT's next-sentence classifier on the pooler (BertForPreTraining)"),
           Arg("bias", bool, True, doc="the dense's bias and the LayerNorm's shift (ModernBERT's head: false)"),
           example="head: mlm(gelu, eps=1e-12)", module="MaskedLMTransform", attr="mlm",
           doc_class="BERT's masked-LM transform (Devlin et al. §3.1; HF's BertPredictionHeadTransform): "
                     "dense, activation, LayerNorm.")
def mlm(b, use, ctx, x):
    """BERT's masked-LM head (BertOnlyMLMHead): Linear d -> d, the activation, LayerNorm (module
    `mlm`), then logits through the token embedding's weight plus a bias of its own, `mlm_bias`
    (the tied projection reads the root's table, so it sits at the root as a tied `lm` does);
    untied (`tied=false`, tie_word_embeddings false), a Linear d -> vocab `mlm_decoder` of its own.
    With `nsp`, BertPreTrainingHeads: also the pooler and `seq_relationship`, Linear d -> 2 on it
    (Devlin et al. §3.1, task 2), returned after the logits as HF's BertForPreTraining does.
    `bias=false`: the dense and the LayerNorm without bias (ModernBertPredictionHead; the decoder
    keeps its bias). With a projected embedding (`tokens(..., dim=E, proj=d)`, ELECTRA's
    generator) the dense maps d -> E and the decoder reads the E-wide token table."""
    spec, dim = ctx.spec, b.shape(x)[-1]
    vocab, e = spec.embed.vocab, spec.embed.dim if spec.embed.proj else dim  # ELECTRA's generator: dense d -> E
    with b.module("mlm", "MaskedLMTransform", dim=dim, act=use["act"].name):
        h = b.emit("linear", (x,), "dense", out_features=e, bias=use["bias"], in_features=dim)
        h = use["act"].lower(b, ctx, h)
        h = b.emit("layer_norm", (h,), "norm", dim=e, eps=use["eps"], **({} if use["bias"] else {"bias": False}))
    if use["tied"]:
        y = b.emit("linear", (h,), "mlm_decoder", out_features=vocab, bias=False, in_features=e,
                   weights=_tied_name(spec))
        bias = b.emit("parameter", (), "mlm_bias", shape=(vocab,), init="zeros")
        y = b.emit("add", (y, bias), "logits")
    else:
        y = b.emit("linear", (h,), "mlm_decoder", out_features=vocab, bias=True, in_features=e)
    if not use["nsp"]:
        return (y,)
    _, pooled = pooler(b, use, ctx, x)
    return (y, b.emit("linear", (pooled,), "seq_relationship", out_features=2, bias=True, in_features=dim))


@construct("head", "discriminator", Arg("act", "act", "gelu", doc="the dense's activation (HF: hidden_act)"),
           example="head: discriminator(gelu)", module="Discriminator", attr="discriminator",
           doc_class="ELECTRA's replaced-token detection head: dense, activation, one logit per token.")
def discriminator(b, use, ctx, x):
    """ELECTRA's replaced-token detection (Clark et al. 2020 §2; HF's ElectraForPreTraining):
    Linear d -> d, the activation and Linear d -> 1 on every token, one logit (B, N) each: whether
    the generator replaced that token."""
    from graphspec.spec.errors import SpecError

    if len(b.shape(x)) != 3:
        raise SpecError.at(use.loc or b.loc, "discriminator scores tokens; this model ends in a feature map",
                           "use head: classifier(...) on a CNN")
    dim = b.shape(x)[-1]
    with b.module("discriminator", "Discriminator", dim=dim, act=use["act"].name):
        h = b.emit("linear", (x,), "dense", out_features=dim, bias=True, in_features=dim)
        h = use["act"].lower(b, ctx, h)
        y = b.emit("linear", (h,), "prediction", out_features=1, bias=True, in_features=dim)
    return (b.emit("select", (y,), "logits", index=0, dim=-1),)


@construct("head", "map", Arg("heads", int, None, minimum=1, doc="attention heads (default: the encoder's)"),
           Arg("d_ff", int, None, minimum=1, doc="the MLP's width (default: the encoder's)"),
           Arg("act", "act", None, doc="the MLP's activation (default: the encoder's)"),
           Arg("eps", float, None, minimum=0, doc="the LayerNorm's ε (default: the encoder's)"),
           example="head: map", module="AttentionPool", attr="attn_pool",
           doc_class="Multihead attention pooling (Zhai et al. 2023, SigLIP; HF's "
                     "SiglipMultiheadAttentionPoolingHead): a learned probe attends over the tokens, then "
                     "x + mlp(norm(x)); the probe's output is the pooled vector.")
def map_pool(b, use, ctx, x):
    """SigLIP's MAP head (multihead attention pooling; Lee et al. 2019's PMA as SigLIP and
    So400m use it, arXiv:2303.15343, arXiv:2305.13035): one learned probe `latent` (1, 1, d)
    queries all N tokens with multi-head cross-attention (`attn`: q from the probe, k and v from
    the tokens, out projection), then y + mlp(norm(y)); the probe's row is the pooled (B, d),
    returned after the sequence output as HF's SiglipVisionModel returns pooler_output. Heads,
    the MLP and ε default to the encoder's (HF's head reads the same config).
    MACs per image: probe q d², k and v 2·N·d², q·kᵀ and ·v 2·N·d (1 × N pairs), out d², MLP 2·d·d_ff."""
    from graphspec import vocab
    from graphspec.spec.errors import SpecError
    from graphspec.vocab import norms
    from graphspec.vocab.attention import attend
    from graphspec.vocab.blocks import Layer
    from graphspec.vocab.mlps import hidden

    if not ctx.spec.stacks or len(b.shape(x)) != 3:
        raise SpecError.at(use.loc or b.loc, "map() pools a token sequence (B, N, d): this spec has no transformer stack",
                           "use head: classifier(...) on a CNN, or add an encoder")
    st, dim = ctx.spec.stacks[-1], b.shape(x)[-1]
    heads = use["heads"] or st.heads[-1]
    if isinstance(dim, int) and dim % heads:
        raise SpecError.at(use.loc or b.loc, f"map(): {heads} heads do not divide the width {dim}",
                           f"write map(heads=h) with h dividing {dim}, or leave heads out (the encoder's {st.heads[-1]})")
    mlp = st.mlp if st.mlp is not None and st.mlp.name == "mlp" else \
        vocab.use("mlp", "mlp", d_ff=st.d_ff, act=vocab.use("act", st.act), ratio=st.mlp_ratio)
    if use["d_ff"] is not None or use["act"] is not None:
        mlp = vocab.use("mlp", "mlp", d_ff=use["d_ff"] or hidden(mlp, dim), act=use["act"] or mlp["act"])
    eps = use["eps"] if use["eps"] is not None else \
        (st.norm_kind["eps"] if st.norm_kind is not None and st.norm_kind.name == "layer_norm" else st.eps)
    norm = vocab.use("norm", "layer_norm", eps=eps)
    layer = Layer(dim=dim, heads=heads, kv_heads=heads, head_dim=dim // heads, norm=norm,
                  mask=vocab.use("mask", "global"), mlp=mlp)
    with b.module("attn_pool", "AttentionPool", dim=dim, heads=heads):
        latent = b.emit("parameter", (), "latent", shape=(1, 1, dim), init="normal")
        probe = b.emit("expand", (latent, x), "probe")  # B, 1, d
        y = attend(b, layer, probe, x, "attn")  # B, 1, d: the probe over all N tokens
        h = mlp.lower(b, layer, norms.apply(b, norm, y, "norm"), "mlp")
        y = b.emit("add", (y, h), "residual")
        pooled = b.emit("select", (y,), "pool", index=0)  # B, d
    return (x, pooled)


# -- reading `head:` ----------------------------------------------------------------------------
WHAT = {"pool": "pooling"}  # how a value's error names the argument


def params() -> dict[str, tuple[str, ...]]:
    """{head: its argument names, in positional order}, for `_Reader.call`."""
    return {name: tuple(a.name for a in c.args) for name, c in KINDS["head"].items()}


def read(r, name: str, given: dict[str, Any], path: tuple) -> Use | None:
    """The `Use` of head `name` with the arguments `given` (from `_Reader.call`) checked against
    the construct's `Arg`s; None where one is bad (reported in `r.diags`)."""
    from graphspec.spec.reader import _BAD
    from graphspec.vocab.registry import read as read_construct

    c = KINDS["head"].get(name or "none")
    if c is None or not name:
        return None
    defaults = c.hooks["defaults"](r.env) if "defaults" in c.hooks else {}
    out: dict[str, Any] = {}
    for a in c.args:
        v = given.get(a.name, defaults.get(a.name, a.default))
        if a.kind is not None and v is None and a.default is None:
            pass  # an optional construct left out (map's act: the encoder's)
        elif a.kind is not None:  # a construct (mlm's activation)
            v = read_construct(r, v, path, a.kind, f"{name}() argument `{a.name}`") or _BAD
        elif v is REQUIRED:
            r.diags.add(r.raw.loc(*path), f"{name}() needs `{a.name}`", f"write {c.signature()}")
            v = _BAD
        elif v is None and a.default is None:
            pass  # an optional argument left out or `none` (softcap, scale)
        elif a.type is str:
            v = r.choice(v, path, a.choices, WHAT.get(a.name, a.name))
        else:
            v = r.typed(v, path, a.type, a.name, minimum=a.minimum)
        out[a.name] = v
    if any(v is _BAD for v in out.values()):
        return None
    for _arg, msg, fix in (c.check(out) if c.check else []):
        r.diags.add(r.raw.loc(*path), msg, fix)
    return Use(c, tuple(out.items()), r.raw.loc(*path))


def use_of(head) -> Use:
    """The `Use` a `HeadSpec` stands for (one built in Python, `HeadSpec("none")`, has none)."""
    if head.use is not None:
        return head.use
    from graphspec.vocab.registry import use

    return use("head", head.kind, **{a.name: getattr(head, a.name) for a in KINDS["head"][head.kind].args
                                     if hasattr(head, a.name)})

