"""A Hugging Face `config.json` as a readable graphspec spec (`graphspec import CONFIG.json`).

    text = from_hf_config(json.load(open("config.json")))        # YAML text, like specs/*.yaml
    graphspec.load(path_of(text))                                # params = the HF model's

One function per `model_type` (`_gpt2`, `_bert`, ..., `_llm` for the Llama-like families) reads
the keys that shape the model through `config.Reader` (typed, defaulted as the HF Config class
of transformers 5 defaults them) and writes the spec with the vocabulary of graphspec/vocab.
An option whose value graphspec cannot express (`rope_scaling`, a `hidden_act` it has no
activation for, Qwen2's `use_sliding_window`, ...) or does not know is an error naming it and
its value; nothing is dropped silently. The head follows `architectures[0]` (e.g.
LlamaForCausalLM: `lm`, ViTForImageClassification: `classifier`); without it, the family's
base model (GPT-2, Llama & co.: the causal LM; BERT, ViT: with the pooler; Swin, T5: none).
DETR (hf_import_detr.py) writes its ResNet backbone inline.
"""

from __future__ import annotations

import re
from typing import Any

from graphspec.interchange.config import Reader, show
from graphspec.interchange.defaults import DEFAULTS, FAMILY_IGNORED
from graphspec.spec.errors import Loc, SpecError

ACTS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": None,
        "relu": "relu", "silu": "silu", "swish": "silu"}
ACT_FIX = "graphspec has gelu (erf), gelu_tanh (gelu_new, gelu_pytorch_tanh), relu and silu"


class Spec:
    """The pieces of a spec, rendered in the bundled specs' layout."""

    def __init__(self, name: str, comment: list[str]):
        self.name, self.comment = name, comment
        self.names_hf = False
        self.vars: list[tuple[str, Any]] = []
        self.input = self.backbone = self.embed = self.head = ""
        self.stacks: list[tuple[str, list[tuple[str, Any]]]] = []

    def var(self, name: str, value: Any) -> str:
        self.vars.append((name, value))
        return name

    def text(self) -> str:
        out = [f"# {c}" if c else "#" for c in self.comment]
        out.append(f"name: {self.name}")
        if self.names_hf:
            out.append("names: hf")
        out.append("vars: " + ", ".join(f"{k}={num(v)}" for k, v in self.vars))
        out.append(f"input: {self.input}")
        if self.backbone:
            out.append(f"backbone: {self.backbone}")
        out.append(f"embed: {self.embed}")
        for key, fields in self.stacks:
            out.append(f"{key}:")
            out += [f"  {k}: {v if isinstance(v, str) else num(v)}" for k, v in fields
                    if not (k in ("dropout", "attn_dropout", "drop_path") and v == 0)]  # the default
        out.append(f"head: {self.head}")
        return "\n".join(out) + "\n"


def num(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, list):
        return "[" + ", ".join(num(x) for x in v) + "]"
    return repr(v) if isinstance(v, float) else str(v)


def _drop(p: float) -> str:
    return f", dropout={num(p)}" if p else ""


def _act(r: Reader, key: str) -> str:
    v = r.str(key, "gelu")
    act = ACTS.get(v)
    if act is None:
        r.error(key, f"option {key} = {show(v)} is not expressible in graphspec: no such activation", ACT_FIX)
        return "gelu"
    return act


# What task heads compute, for --base's comment (and the refusal of those graphspec does not build).
HEADS_LEFT_OUT = {
    "BertForMaskedLM": "the masked-LM head, `mlm` (dense, GELU, LayerNorm, then a decoder tied to the word "
                       "embeddings with its own bias)",
    "T5ForConditionalGeneration": "the LM head, `lm(tied=true, scale=d_model**-0.5)`: the decoder output times "
                                  "d_model^-0.5, then the projection tied to the shared embedding",
    "BertForPreTraining": "the masked-LM head and the next-sentence classifier, `mlm(gelu, eps=1e-12, nsp=true)`",
    "BertLMHeadModel": "the masked-LM head, `mlm`, over causal self-attention (is_decoder: `attention: causal`)",
}
CLASS_NAME = re.compile(r"[A-Za-z_]\w{0,99}")


def _head(r: Reader, family: str, heads: dict[str, str], default: str, why: dict[str, str] | None = None) -> str:
    """The spec's head for `architectures[0]` (its family's base model without one; with
    `r.base`, the base model whatever is declared, noting the class whose head is left out).
    `why` says, per class, what makes its head inexpressible."""
    arch = r.raw("architectures")
    base = next(k for k in heads if "For" not in k and "LMHead" not in k)  # GPT2Model, BertModel, ...
    if arch in (None, []):
        return heads[base if r.base else default]
    if not (isinstance(arch, list) and all(isinstance(a, str) for a in arch)):
        r.error("architectures", f"architectures must be a list of class names, not {show(arch)}")
        return heads[default]
    cls = arch[0]
    if r.base and CLASS_NAME.fullmatch(cls):
        r.left_out, r.base_class = (cls if cls != base else None), base
        return heads[base]
    if cls not in heads:
        what = (why or {}).get(cls) or HEADS_LEFT_OUT.get(cls) or f"{cls} has a head graphspec does not build"
        r.error("architectures", f"option architectures = {show(arch)} is not expressible in graphspec: {what}",
                f"import the base model {base} with `graphspec import --base` (Python: graphspec.interchange."
                f"from_hf_config(cfg, base=True)); graphspec builds {', '.join(sorted(heads))} for {family}")
        return heads[default]
    return heads[cls]


def _classes(r: Reader) -> int:
    labels = r.data.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    n = r.data.get("num_labels", r.defaults.get("num_labels", 2))
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 2


def _pad(r: Reader) -> str:
    """`, pad_token_id=P` when the config's pad_token_id is a token of its vocabulary; one that is
    none (null, -1, past the vocabulary) never equals an id, so HF reads the last position then."""
    pad, vocab = r.raw("pad_token_id"), r.raw("vocab_size")
    ok = isinstance(pad, int) and not isinstance(pad, bool) and isinstance(vocab, int) and 0 <= pad < vocab
    return f", pad_token_id={pad}" if ok else ""


def _span(r: Reader, cls: str, args: str = "") -> str:
    """`span(args)` for `cls`, a ...ForQuestionAnswering whose qa_outputs is Linear(d, num_labels)
    split into the start and the end logits: two labels, or HF's own model fails."""
    arch = r.raw("architectures")
    if isinstance(arch, list) and arch[:1] == [cls] and not r.base and _classes(r) != 2:
        key = "id2label" if isinstance(r.data.get("id2label"), dict) and r.data.get("id2label") else "num_labels"
        r.error(key, f"option {key} gives {_classes(r)} labels; {cls} splits its qa_outputs into the start and the "
                "end logits, which takes 2", "set num_labels to 2 (or leave it out)")
    return f"span({args})" if args else "span"


def _seq(r: Reader, key: str) -> int:
    return min(128, r.int(key) or 128)


def _gpt2(r: Reader, s: Spec) -> None:
    d = r.int("n_embd")
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", r.int("n_layer")), s.var("h", r.int("n_head"))
    s.var("d_ff", r.int("n_inner", optional=True) or 4 * d)
    s.var("n_ctx", r.int("n_positions")), s.var("seq_len", _seq(r, "n_positions")), s.var("batch", 1)
    r.expect("scale_attn_by_inverse_layer_idx", (False,), "attention scaled by 1/layer index")
    r.expect("add_cross_attention", (False,), "GPT-2 with cross-attention")
    r.raw("reorder_and_upcast_attn")  # numerics of fp16 training only
    tied = r.bool("tie_word_embeddings", True)
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=d, pos=learned(n_ctx){_drop(r.float('embd_pdrop', default=0))})"
    fields = [("dim", "d"), ("heads", "h"), ("d_ff", "d_ff"), ("norm", "pre"), ("act", _act(r, "activation_function")),
              ("dropout", r.float("resid_pdrop", default=0)), ("attn_dropout", r.float("attn_pdrop", default=0)),
              ("eps", r.float("layer_norm_epsilon"))]
    if not r.bool("scale_attn_weights", True):
        fields.append(("scale", 1))
    s.stacks.append(("decoder×L", fields + [("final_norm", True)]))
    lm = f"lm(tied={num(tied)})"
    heads = {"GPT2LMHeadModel": lm, "GPT2Model": "none",
             # `score` without bias at the last token that is not padding (as GenericForSequenceClassification)
             "GPT2ForSequenceClassification": f"classifier({_classes(r)}, pool=last, bias=false{_pad(r)})",
             "GPT2ForTokenClassification": f"classifier({_classes(r)}, pool=tokens)",  # `classifier`, biased
             "GPT2ForQuestionAnswering": "span"}  # qa_outputs: Linear(d, 2), whatever num_labels says
    s.head = _head(r, "gpt2", heads, "GPT2LMHeadModel")


def _opt(r: Reader, s: Spec) -> None:
    """OPT (Zhang et al. 2022): GPT-2's pre-norm decoder with separate q, k, v, ReLU, a tied head,
    and positions from 2 (OPTLearnedPositionalEmbedding: max_position_embeddings + 2 rows). HF
    counts them from the attention mask, cumsum(mask)·mask + 1; with the mask of a batch whose
    padding is pad_token_id (what the tokenizer gives) that is `learned(n_pos, padding_idx=pad)`,
    and 2, 3, ... on an unpadded row. opt-350m's post-norm layers and word_embed_proj_dim are
    refused."""
    d = r.int("hidden_size")
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", r.int("num_hidden_layers"))
    s.var("h", r.int("num_attention_heads")), s.var("d_ff", r.int("ffn_dim"))
    n = r.int("max_position_embeddings")
    pad = r.int("pad_token_id", minimum=0)
    if pad != 1:  # the table's offset is 2 whatever the pad id: positions from pad + 1 only for pad 1
        r.error("pad_token_id", f"pad_token_id {pad}: OPT's positions start at 2 whatever the pad id, which "
                "graphspec's learned(padding_idx=) reads as pad id 1", "use pad_token_id 1 (OPT's)")
    s.var("n_pos", n + 2), s.var("seq_len", min(128, n)), s.var("batch", 1)
    r.expect("do_layer_norm_before", (True,), "OPT's post-norm layers (opt-350m)")
    r.expect("_remove_final_layer_norm", (False,), "OPT without its final LayerNorm")
    r.expect("layer_norm_elementwise_affine", (True,), "LayerNorms without a scale and shift")
    if r.int("word_embed_proj_dim", optional=True) not in (None, d):
        r.error("word_embed_proj_dim", f"option word_embed_proj_dim = {r.data['word_embed_proj_dim']} is not "
                f"expressible in graphspec: project_in and project_out around the decoder (opt-350m); it must be "
                f"hidden_size ({d})")
    r.raw("layerdrop")  # dropping layers in training only
    if r.float("activation_dropout", default=0) != 0:  # opt-125m's config.json: 0.0 (OPTConfig has it no more)
        r.error("activation_dropout", f"option activation_dropout = {r.data['activation_dropout']} is not expressible "
                "in graphspec: a dropout after the MLP's activation", "graphspec imports activation_dropout = 0")
    tied = r.bool("tie_word_embeddings", True)
    s.input = "tokens(seq_len)"
    s.embed = "tokens(vocab, dim=d, pos=learned(n_pos, padding_idx=1))"  # OPTDecoder: no dropout on the embeddings
    fields = [("dim", "d"), ("heads", "h"), ("d_ff", "d_ff"), ("norm", "pre"), ("act", _act(r, "activation_function")),
              ("dropout", r.float("dropout", default=0)), ("attn_dropout", r.float("attention_dropout", default=0))]
    if not r.bool("enable_bias", True):
        fields.append(("bias", False))
    s.stacks.append(("decoder×L", fields + [("final_norm", True)]))
    heads = {"OPTForCausalLM": f"lm(tied={num(tied)})", "OPTModel": "none",
             "OPTForSequenceClassification": f"classifier({_classes(r)}, pool=last, bias=false{_pad(r)})",
             "OPTForQuestionAnswering": "span"}
    s.head = _head(r, "opt", heads, "OPTForCausalLM")


def _bert(r: Reader, s: Spec, roberta: str | None = None) -> None:
    """BERT; `roberta`: RoBERTa's or XLM-R's class prefix ("Roberta", "XLMRoberta"), BERT with
    fairseq's positions (from pad_token_id + 1, padding skipped: `learned(max_len, padding_idx=P)`),
    a classifier of its own on <s> (dense, tanh, out_proj: pool=pooler's arithmetic) and an MLM
    head whose activation is always gelu."""
    s.var("vocab", r.int("vocab_size")), s.var("H", r.int("hidden_size")), s.var("L", r.int("num_hidden_layers"))
    s.var("A", r.int("num_attention_heads")), s.var("d_ff", r.int("intermediate_size"))
    max_len = r.int("max_position_embeddings")
    pad = r.int("pad_token_id", minimum=0) if roberta else None
    if pad is not None and not 0 <= pad < max_len - 1:
        r.error("pad_token_id", f"pad_token_id {pad} is also {roberta}'s first position - 1, and the position table "
                f"has {max_len} rows (max_position_embeddings)", "a pad_token_id below max_position_embeddings - 1")
        pad = None
    elif pad is not None and pad >= r.int("vocab_size"):
        r.error("pad_token_id", f"pad_token_id {pad} is not a token of the vocabulary of {r.int('vocab_size')}",
                "a pad_token_id below vocab_size")
        pad = None
    s.var("max_len", max_len)
    s.var("seq_len", min(_seq(r, "max_position_embeddings"), max_len - (pad + 1 if pad is not None else 0)) or 1)
    s.var("batch", 1)
    causal = [("attention", "causal")] if r.bool("is_decoder", False) else []  # BertLMHeadModel: causal self-attention
    r.expect("add_cross_attention", (False,), "BERT with cross-attention")
    r.expect("position_embedding_type", ("absolute",), "only absolute (learned) positions are built")
    eps, drop, act = r.float("layer_norm_eps"), r.float("hidden_dropout_prob", default=0), _act(r, "hidden_act")
    untied = "" if r.bool("tie_word_embeddings", True) else ", tied=false"  # a decoder of its own
    heads = {"BertModel": "pooler", "BertForMaskedLM": f"mlm({act}, eps={num(eps)}{untied})",  # hidden_act, eps
             "BertForPreTraining": f"mlm({act}, eps={num(eps)}{untied}, nsp=true)",  # + next-sentence on the pooler
             "BertLMHeadModel": f"mlm({act}, eps={num(eps)}{untied})",  # BertOnlyMLMHead (with is_decoder: causal)
             # the classifier on the pooler; on every token (that model has no pooler)
             "BertForSequenceClassification": f"classifier({_classes(r)}, pool=pooler)",
             "BertForTokenClassification": f"classifier({_classes(r)}, pool=tokens)",
             "BertForQuestionAnswering": _span(r, "BertForQuestionAnswering")}  # qa_outputs on every token
    if roberta:  # RobertaLMHead: dense, gelu (whatever hidden_act says), LayerNorm, decoder
        P, lm = roberta, f"mlm(gelu, eps={num(eps)}{untied})"
        heads = {f"{P}Model": "pooler", f"{P}ForMaskedLM": lm, f"{P}ForCausalLM": lm,
                 # RobertaClassificationHead on <s>: dense, tanh, out_proj
                 f"{P}ForSequenceClassification": f"classifier({_classes(r)}, pool=pooler)",
                 f"{P}ForTokenClassification": f"classifier({_classes(r)}, pool=tokens)",
                 f"{P}ForQuestionAnswering": _span(r, f"{P}ForQuestionAnswering")}
    types = r.int("type_vocab_size")
    s.input = "tokens(seq_len)"
    table = f"learned(max_len, padding_idx={pad})" if pad is not None else "learned(max_len)"
    s.embed = f"tokens(vocab, dim=H, pos={table}, types={types}, norm=true, eps={num(eps)}{_drop(drop)})"
    s.stacks.append(("encoder×L", [("dim", "H"), ("heads", "A"), ("d_ff", "d_ff"), ("norm", "post"),
                                   ("act", act), ("eps", eps), ("dropout", drop),
                                   ("attn_dropout", r.float("attention_probs_dropout_prob", default=0))] + causal))
    s.head = _head(r, roberta or "bert", heads, f"{roberta}Model" if roberta else "BertModel")


def _electra(r: Reader, s: Spec) -> None:
    """ELECTRA (Clark et al. 2020): BERT's body, no pooler, its embeddings embedding_size wide and
    projected to hidden_size where they differ (`tokens(..., dim=E, proj=H)`); ElectraForPreTraining
    as `discriminator(hidden_act)`, ElectraForMaskedLM (the generator) as `mlm(gelu, eps)` (dense
    H -> E, the E-wide table as decoder), ElectraForSequenceClassification's head (dense, gelu,
    out_proj on [CLS]) as `classifier(n, pool=cls, transform=gelu, transform_norm=false)`."""
    s.var("vocab", r.int("vocab_size")), s.var("E", r.int("embedding_size")), s.var("H", r.int("hidden_size"))
    s.var("L", r.int("num_hidden_layers")), s.var("A", r.int("num_attention_heads"))
    s.var("d_ff", r.int("intermediate_size")), s.var("max_len", r.int("max_position_embeddings"))
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    r.expect("add_cross_attention", (False,), "ELECTRA with cross-attention")
    r.expect("is_decoder", (False,), "ELECTRA as a decoder (ElectraForCausalLM)")
    r.expect("position_embedding_type", ("absolute",), "only absolute (learned) positions are built")
    eps, drop, act = r.float("layer_norm_eps"), r.float("hidden_dropout_prob", default=0), _act(r, "hidden_act")
    untied = "" if r.bool("tie_word_embeddings", True) else ", tied=false"
    heads = {"ElectraModel": "none", "ElectraForPreTraining": f"discriminator({act})",
             "ElectraForMaskedLM": f"mlm(gelu, eps={num(eps)}{untied})",
             "ElectraForSequenceClassification":
                 f"classifier({_classes(r)}, pool=cls, transform=gelu, transform_norm=false)",
             "ElectraForTokenClassification": f"classifier({_classes(r)}, pool=tokens)",
             "ElectraForQuestionAnswering": _span(r, "ElectraForQuestionAnswering")}
    proj = ", proj=H" if r.data.get("embedding_size", r.defaults.get("embedding_size")) != r.int("hidden_size") else ""
    s.input = "tokens(seq_len)"
    dim = "E" if proj else "H"
    s.embed = (f"tokens(vocab, dim={dim}, pos=learned(max_len), types={r.int('type_vocab_size')}, norm=true, "
               f"eps={num(eps)}{_drop(drop)}{proj})")
    s.stacks.append(("encoder×L", [("dim", "H"), ("heads", "A"), ("d_ff", "d_ff"), ("norm", "post"),
                                   ("act", act), ("eps", eps), ("dropout", drop),
                                   ("attn_dropout", r.float("attention_probs_dropout_prob", default=0))]))
    s.head = _head(r, "electra", heads, "ElectraModel")


def _distilbert(r: Reader, s: Spec) -> None:
    """DistilBERT (Sanh et al. 2019): BERT's post-norm blocks without token types or pooler, every
    LayerNorm at ε 1e-12 (fixed in HF's code); DistilBertForSequenceClassification's
    pre_classifier, ReLU and classifier on [CLS] as `classifier(n, pool=cls, transform=relu,
    transform_norm=false)`, DistilBertForMaskedLM's vocab_transform, activation, vocab_layer_norm
    and tied vocab_projector as `mlm(act, eps=1e-12)`."""
    s.var("vocab", r.int("vocab_size")), s.var("D", r.int("dim")), s.var("L", r.int("n_layers"))
    s.var("h", r.int("n_heads")), s.var("d_ff", r.int("hidden_dim"))
    s.var("max_len", r.int("max_position_embeddings")), s.var("seq_len", _seq(r, "max_position_embeddings"))
    s.var("batch", 1)
    r.expect("sinusoidal_pos_embds", (False,), "DistilBERT with fixed sinusoidal positions (HF keeps them as a "
             "parameter table)")
    drop, act = r.float("dropout", default=0), _act(r, "activation")
    untied = "" if r.bool("tie_word_embeddings", True) else ", tied=false"
    heads = {"DistilBertModel": "none", "DistilBertForMaskedLM": f"mlm({act}, eps=1e-12{untied})",
             "DistilBertForSequenceClassification":
                 f"classifier({_classes(r)}, pool=cls, transform=relu, transform_norm=false)",
             "DistilBertForTokenClassification": f"classifier({_classes(r)}, pool=tokens)",
             "DistilBertForQuestionAnswering": _span(r, "DistilBertForQuestionAnswering")}
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=D, pos=learned(max_len), norm=true, eps=1e-12{_drop(drop)})"
    s.stacks.append(("encoder×L", [("dim", "D"), ("heads", "h"), ("d_ff", "d_ff"), ("norm", "post"), ("act", act),
                                   ("eps", 1e-12), ("dropout", drop),
                                   ("attn_dropout", r.float("attention_dropout", default=0))]))
    s.head = _head(r, "distilbert", heads, "DistilBertModel")


def _roberta(r: Reader, s: Spec) -> None:
    _bert(r, s, "Roberta")


def _xlm_roberta(r: Reader, s: Spec) -> None:
    _bert(r, s, "XLMRoberta")


def _camembert(r: Reader, s: Spec) -> None:  # CamemBERT (Martin et al. 2020): RoBERTa trained on French
    _bert(r, s, "Camembert")


def _vit(r: Reader, s: Spec, deit: bool = False) -> None:
    """ViT (ViTModel, ViTForImageClassification); `deit`: DeiT's, whose embedding always has the
    distillation token after [class] (DeiTModel, DeiTForImageClassification on [class] only,
    DeiTForImageClassificationWithTeacher averaging both tokens' classifiers)."""
    d = r.int("hidden_size")
    s.var("img_size", r.int("image_size")), s.var("patch", r.int("patch_size")), s.var("D", d)
    s.var("L", r.int("num_hidden_layers")), s.var("h", r.int("num_attention_heads"))
    s.var("d_ff", r.int("intermediate_size")), s.var("classes", _classes(r)), s.var("batch", 1)
    r.raw("encoder_stride")  # ViTForMaskedImageModeling's decoder only
    if r.int("pooler_output_size", optional=True) not in (None, d):
        r.error("pooler_output_size", f"option pooler_output_size = {r.data['pooler_output_size']} is not expressible "
                f"in graphspec: the pooler keeps the width ({d})")
    r.expect("pooler_act", ("tanh",), "the pooler is tanh(W h + b)")
    channels = r.int("num_channels")
    s.input = "image(img_size)" if channels == 3 else f"image(img_size, channels={channels})"
    dist = ", dist_token=true" if deit else ""
    s.embed = f"patches(patch, dim=D, cls_token=true{dist}, pos=learned{_drop(r.float('hidden_dropout_prob', default=0))})"
    fields = [("dim", "D"), ("heads", "h"), ("d_ff", "d_ff"), ("norm", "pre"), ("act", _act(r, "hidden_act")),
              ("eps", r.float("layer_norm_eps")), ("attn_dropout", r.float("attention_probs_dropout_prob", default=0))]
    if not r.bool("qkv_bias", True):
        fields.append(("qkv_bias", False))
    s.stacks.append(("encoder×L", fields + [("final_norm", True)]))
    if deit:
        s.head = _head(r, "deit", {"DeiTForImageClassification": "classifier(classes, pool=cls)",
                                   "DeiTForImageClassificationWithTeacher": "classifier(classes, pool=cls_dist)",
                                   "DeiTModel": "pooler"}, "DeiTModel")
        return
    s.head = _head(r, "vit", {"ViTForImageClassification": "classifier(classes, pool=cls)", "ViTModel": "pooler"},
                   "ViTModel")


def _deit(r: Reader, s: Spec) -> None:
    _vit(r, s, deit=True)


def _swin(r: Reader, s: Spec) -> None:
    depths = r.ints("depths")
    s.var("img_size", r.int("image_size")), s.var("patch", r.int("patch_size")), s.var("C", r.int("embed_dim"))
    s.var("M", r.int("window_size")), s.var("classes", _classes(r)), s.var("batch", 1)
    r.expect("use_absolute_embeddings", (False,), "Swin with absolute position embeddings")
    for k in ("encoder_stride", "num_layers", "hidden_size", "stage_names", "out_features", "out_indices"):
        r.raw(k)  # derived, or the backbone / masked-image-modeling API only
    eps = r.float("layer_norm_eps")
    channels = r.int("num_channels")
    s.input = "image(img_size)" if channels == 3 else f"image(img_size, channels={channels})"
    s.embed = f"patches(patch, dim=C, norm=true, eps={num(eps)})"
    fields = [("dim", "C"), ("depths", depths), ("heads", r.ints("num_heads", len(depths))),
              ("attention", "shifted_windows(M)"), ("downsample", "patch_merging"),
              ("mlp_ratio", r.float("mlp_ratio")), ("norm", "pre"), ("act", _act(r, "hidden_act")), ("eps", eps),
              ("dropout", r.float("hidden_dropout_prob", default=0)),
              ("attn_dropout", r.float("attention_probs_dropout_prob", default=0)),
              ("drop_path", r.float("drop_path_rate", default=0))]
    if not r.bool("qkv_bias", True):
        fields.append(("qkv_bias", False))
    s.stacks.append(("encoder", fields + [("final_norm", True)]))
    s.head = _head(r, "swin", {"SwinForImageClassification": "classifier(classes, pool=mean)", "SwinModel": "none"},
                   "SwinModel")


from graphspec.interchange.hf_gpt_oss import import_gpt_oss  # noqa: E402
from graphspec.interchange.hf_import_deepseek import _deepseek  # noqa: E402
from graphspec.interchange.hf_import_detr import _detr  # noqa: E402  (they use Spec, _act, _head)
from graphspec.interchange.hf_import_llm import _llm, _pvt, _t5  # noqa: E402

BUILDERS = {"gpt2": _gpt2, "bert": _bert, "roberta": _roberta, "xlm-roberta": _xlm_roberta, "camembert": _camembert,
            "distilbert": _distilbert, "electra": _electra, "opt": _opt, "vit": _vit, "deit": _deit, "swin": _swin, "llama": _llm, "mistral": _llm,
            "mixtral": _llm, "qwen2": _llm, "qwen3": _llm, "gemma": _llm, "gemma2": _llm, "phi": _llm, "smollm3": _llm,
            "phi3": _llm, "qwen3_moe": _llm, "qwen2_moe": _llm, "olmo2": _llm, "gemma3_text": _llm, "t5": _t5, "pvt": _pvt, "detr": _detr,
            "deepseek_v2": _deepseek, "deepseek_v3": _deepseek, "gpt_oss": import_gpt_oss}

from graphspec.interchange.hf_import_siglip import _siglip, _siglip_vision  # noqa: E402

BUILDERS.update(siglip_vision_model=_siglip_vision, siglip=_siglip)  # SigLIP's vision tower (hf_import_siglip.py)

from graphspec.interchange.hf_import_llama4 import _llama4, _llama4_text  # noqa: E402

BUILDERS.update(llama4_text=_llama4_text, llama4=_llama4)  # Llama 4's text model (hf_import_llama4.py)

from graphspec.interchange.hf_olmo3_glm import import_glm4_moe, import_olmo3  # noqa: E402

BUILDERS.update(olmo3=import_olmo3, glm4_moe=import_glm4_moe)  # OLMo 3, GLM-4.5 (hf_olmo3_glm.py)


from graphspec.interchange.hf_import_dinov2 import _dinov2, _dinov2_with_registers  # noqa: E402

BUILDERS.update(dinov2=_dinov2, dinov2_with_registers=_dinov2_with_registers)  # DINOv2 (hf_import_dinov2.py)

from graphspec.interchange.hf_modernbert import import_modernbert  # noqa: E402

BUILDERS.update(modernbert=import_modernbert)  # ModernBERT (hf_modernbert.py)

from graphspec.interchange.hf_import_llm import import_gptj  # noqa: E402

BUILDERS.update(gptj=import_gptj)  # GPT-J (hf_import_llm.py)


def supported() -> list[str]:
    return sorted(BUILDERS)


def from_hf_config(config: dict, name: str | None = None, file: str = "<config>", text: str | None = None,
                   base: bool = False) -> str:
    """The spec (YAML text) of the model a Hugging Face config describes; SpecError naming every
    option graphspec cannot express. `base`: the family's base model (BertModel, T5Model, ...)
    whatever head `architectures` declares; the spec's header says which head was left out."""
    if not isinstance(config, dict):
        raise SpecError.at(Loc(file, 1, 1), f"a config is a JSON object, not {type(config).__name__}")
    mt = config.get("model_type")
    if mt not in BUILDERS:
        raise SpecError.at(Reader(config, {}, file, text).loc("model_type"),
                           f"model_type {show(mt)} is not one graphspec imports",
                           f"supported model types: {', '.join(supported())}")
    if name is not None and not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name)):
        raise SpecError.at(Loc(file, 1, 1), f"spec name {show(name)}: use 1 to 100 letters, digits, '_', '.' or '-'")
    r = Reader(config, DEFAULTS[mt], file, text, FAMILY_IGNORED.get(mt, set()))
    r.base = bool(base)
    arch = config.get("architectures")
    cls = arch[0] if isinstance(arch, list) and arch and isinstance(arch[0], str) else None
    cls = cls if cls and re.fullmatch(r"[A-Za-z_]\w{0,99}", cls) else None  # the comment holds a class name only
    spec_name = name or mt
    s = Spec(spec_name, [f"Imported from a Hugging Face `{mt}` config" + (f" ({cls})" if cls else "")
                         + " by `graphspec import`.",
                         "Parameter names follow graphspec's weight map for this family (graphspec/weights.py);",
                         "dropout rates are carried where the spec has them, token ids and init settings are not."])
    BUILDERS[mt](r, s)
    r.finish(mt)
    if r.left_out:
        what = HEADS_LEFT_OUT.get(r.left_out, "its task head")
        s.comment[1:1] = [f"--base: {r.left_out}'s head was left out: {what}.",
                          f"This spec is the base model, {r.base_class}."]
    return s.text()
