"""State dicts between graphspec's modules and Hugging Face transformers / torch.nn.Transformer.

graphspec names parameters as the IR does (`analysis.parameters`): the official Swin code's
names (`layers.0.blocks.1.attn.relative_position_bias_table`), timm's for ViT (`blocks.0.attn.q`),
`embed.tokens` / `blocks.i.attn.q` for the NLP models, torchvision's ResNet names and
`encoder/decoder.blocks.i` for DETR. Buffers (BatchNorm statistics, `analysis.buffers`) are
mapped like parameters. Each family is a table of rows
`(graphspec pattern, [source names, newest first], how)`; a source name is a format string of
the pattern's groups, or a function of them where an index shifts (DETR's `layer1` is HF's
`stages.0`), and `how` is

- `copy`: the same tensor;
- `T`: transposed (GPT-2's `Conv1D` stores (in, out));
- `unsqueeze`: the source stores it without graphspec's leading 1 (SigLIP's position table (N, d));
- `swap`: the last two dims swapped (Llama 4's experts, (E, in, out));
- `("part", k)`: slice k of 3 of a packed q|k|v tensor along dim 0 (`in_proj_weight`);
- `("T_part", k)`: transposed, then slice k (GPT-2's `c_attn`);
- `("rows", [names])`: one of the graphspec tensors `names` (format strings of the groups),
  which the source stores concatenated along dim 0 in that order, each as many rows as its
  graphspec tensor has (Phi-3's `qkv_proj`, q|k|v with GQA's narrower k and v; `gate_up_proj`).

Both layouts of graphspec's attention work: three projections `attn.q/k/v` (unfused), or one
`attn.qkv` of width 3C (after `passes.fuse_qkv`; `cross_attn.kv` of width 2C, DETR's `attn.qk`);
a fused tensor is the concatenation of its parts along dim 0, cut where the `chunk`/`split` nodes
that read it say (GQA's q is heads·hd rows, k and v kv_heads·hd; `names: hf` fuses into
`self_attn.qkv_proj`).

    sd = to_graphspec(hf_model, graph)                # HF -> graphspec, for load_state_dict
    hf_sd = from_graphspec(gen.state_dict(), graph, "gpt2", like=hf_model.state_dict())
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from graphspec.analysis import buffers, parameters
from graphspec.ir import Graph

_P = r"(weight|bias)"
_BN = r"(weight|bias|running_mean|running_var)"  # FrozenBatchNorm2d: all four are buffers
_LAYER_PREFIXES = {"pvt": ("pvt.encoder.", "encoder."), "t5": ("",), "swin": ("swin.", ""), "vit": ("vit.", ""), "deit": ("deit.", ""),
                   "dinov2": ("dinov2.", "dinov2_with_registers.", ""), "bert": ("bert.", ""), "roberta": ("roberta.", ""), "distilbert": ("distilbert.", ""), "electra": ("electra.", ""), "opt": ("model.decoder.", "decoder."), "gptj": ("transformer.", ""), "modernbert": ("model.", ""),
                   "gpt2": ("transformer.", ""), "torch_transformer": ("",), "detr": ("model.", ""),
                   "llama": ("model.", "", "transformer."),  # ...ForQuestionAnswering: `transformer`
                   "phi": ("model.", ""), "phi3": ("model.", ""),
                   "llama4": ("model.", "", "language_model.model.", "language_model."),  # ..ForConditionalGeneration
                   "siglip_vision_model": ("", "vision_model.")}


def _stage(i: str, j: str) -> str:
    """torchvision `layer{i}.{j}` -> HF ResNetBackbone `encoder.stages.{i-1}.layers.{j}`."""
    return f"backbone.model.encoder.stages.{int(i) - 1}.layers.{j}"


# ViT-like patch embedding, and q, k, v and output projections under transformers 5's names
# (`{layer}.attention.q_proj`, the layer's path differing by family) or the older ones
# (`encoder.layer.{i}.attention.attention.query`, `.output.dense`): ViT's and DINOv2's
_VIT_EMBED = [(rf"patch_embed\.proj\.{_P}", ["embeddings.patch_embeddings.projection.{0}"], "copy"),
              (r"cls_token", ["embeddings.cls_token"], "copy"),
              (r"pos_embed", ["embeddings.position_embeddings"], "copy")]


def _vit_attention(layer: str) -> list[tuple[str, list[str], Any]]:
    old = {"q": "attention.query", "k": "attention.key", "v": "attention.value", "proj": "output.dense"}
    new = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "proj": "o_proj"}
    return [(rf"blocks\.(\d+)\.attn\.{a}\.{_P}", [f"{layer}.attention.{new[a]}.{{1}}",
                                                  f"encoder.layer.{{0}}.attention.{old[a]}.{{1}}"], "copy") for a in new]


# ViT's and DeiT's blocks and final norm, under transformers 5's names or the older ones
_VIT_BLOCKS = [
    (rf"blocks\.(\d+)\.norm1\.{_P}", ["layers.{0}.layernorm_before.{1}", "encoder.layer.{0}.layernorm_before.{1}"], "copy"),
    (rf"blocks\.(\d+)\.norm2\.{_P}", ["layers.{0}.layernorm_after.{1}", "encoder.layer.{0}.layernorm_after.{1}"], "copy"),
    *_vit_attention("layers.{0}"),
    (rf"blocks\.(\d+)\.mlp\.fc1\.{_P}", ["layers.{0}.mlp.fc1.{1}", "encoder.layer.{0}.intermediate.dense.{1}"], "copy"),
    (rf"blocks\.(\d+)\.mlp\.fc2\.{_P}", ["layers.{0}.mlp.fc2.{1}", "encoder.layer.{0}.output.dense.{1}"], "copy"),
    (rf"norm\.{_P}", ["layernorm.{0}"], "copy"),
]

# BERT's embeddings and blocks (BertModel; RoBERTa's and XLM-R's too)
_BERT_BODY = [
    (r"embed\.tokens\.weight", ["embeddings.word_embeddings.weight"], "copy"),
    (r"embed\.pos\.weight", ["embeddings.position_embeddings.weight"], "copy"),
    (r"embed\.types\.weight", ["embeddings.token_type_embeddings.weight"], "copy"),
    (rf"embed\.norm\.{_P}", ["embeddings.LayerNorm.{0}"], "copy"),
    (rf"blocks\.(\d+)\.attn\.q\.{_P}", ["encoder.layer.{0}.attention.self.query.{1}"], "copy"),
    (rf"blocks\.(\d+)\.attn\.k\.{_P}", ["encoder.layer.{0}.attention.self.key.{1}"], "copy"),
    (rf"blocks\.(\d+)\.attn\.v\.{_P}", ["encoder.layer.{0}.attention.self.value.{1}"], "copy"),
    (rf"blocks\.(\d+)\.attn\.proj\.{_P}", ["encoder.layer.{0}.attention.output.dense.{1}"], "copy"),
    (rf"blocks\.(\d+)\.norm1\.{_P}", ["encoder.layer.{0}.attention.output.LayerNorm.{1}"], "copy"),
    (rf"blocks\.(\d+)\.mlp\.fc1\.{_P}", ["encoder.layer.{0}.intermediate.dense.{1}"], "copy"),
    (rf"blocks\.(\d+)\.mlp\.fc2\.{_P}", ["encoder.layer.{0}.output.dense.{1}"], "copy"),
    (rf"blocks\.(\d+)\.norm2\.{_P}", ["encoder.layer.{0}.output.LayerNorm.{1}"], "copy"),
]

RULES: dict[str, list[tuple[str, list[str], Any]]] = {
    "swin": [
        (rf"patch_embed\.proj\.{_P}", ["embeddings.patch_embeddings.projection.{0}"], "copy"),
        (rf"patch_embed\.norm\.{_P}", ["embeddings.norm.{0}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.norm1\.{_P}", ["encoder.layers.{0}.blocks.{1}.layernorm_before.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.norm2\.{_P}", ["encoder.layers.{0}.blocks.{1}.layernorm_after.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.q\.{_P}", ["encoder.layers.{0}.blocks.{1}.attention.q_proj.{2}",
                                                          "encoder.layers.{0}.blocks.{1}.attention.self.query.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.k\.{_P}", ["encoder.layers.{0}.blocks.{1}.attention.k_proj.{2}",
                                                          "encoder.layers.{0}.blocks.{1}.attention.self.key.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.v\.{_P}", ["encoder.layers.{0}.blocks.{1}.attention.v_proj.{2}",
                                                          "encoder.layers.{0}.blocks.{1}.attention.self.value.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.{_P}", ["encoder.layers.{0}.blocks.{1}.attention.o_proj.{2}",
                                                             "encoder.layers.{0}.blocks.{1}.attention.output.dense.{2}"], "copy"),
        (r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table",
         ["encoder.layers.{0}.blocks.{1}.attention.relative_position_bias.relative_position_bias_table",
          "encoder.layers.{0}.blocks.{1}.attention.self.relative_position_bias_table"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.{_P}", ["encoder.layers.{0}.blocks.{1}.mlp.fc1.{2}",
                                                           "encoder.layers.{0}.blocks.{1}.intermediate.dense.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.{_P}", ["encoder.layers.{0}.blocks.{1}.mlp.fc2.{2}",
                                                           "encoder.layers.{0}.blocks.{1}.output.dense.{2}"], "copy"),
        (rf"layers\.(\d+)\.downsample\.reduction\.{_P}", ["encoder.layers.{0}.downsample.reduction.{1}"], "copy"),
        (rf"layers\.(\d+)\.downsample\.norm\.{_P}", ["encoder.layers.{0}.downsample.norm.{1}"], "copy"),
        (rf"norm\.{_P}", ["layernorm.{0}"], "copy"),
        (rf"head\.{_P}", ["=classifier.{0}"], "copy"),
    ],
    "vit": [
        *_VIT_EMBED,
        *_VIT_BLOCKS,
        (rf"head\.{_P}", ["=classifier.{0}"], "copy"),
    ],
    "deit": [  # DeiTModel and its two classification heads (DeiT's distillation token: `distillation_token`)
        *_VIT_EMBED,
        (r"dist_token", ["embeddings.distillation_token"], "copy"),
        *_VIT_BLOCKS,
        (rf"pooler\.dense\.{_P}", ["pooler.dense.{0}"], "copy"),  # head: pooler (DeiTModel)
        # classifier(n, pool=cls_dist): DeiTForImageClassificationWithTeacher; pool=cls: DeiTForImageClassification
        (rf"head\.{_P}", ["=cls_classifier.{0}", "=classifier.{0}"], "copy"),
        (rf"head_dist\.{_P}", ["=distillation_classifier.{0}"], "copy"),
    ],
    "dinov2": [  # Dinov2Model / Dinov2WithRegistersModel (their `mask_token`, for masked pre-training only, unused)
        *_VIT_EMBED,
        (r"register_tokens", ["embeddings.register_tokens"], "copy"),
        (rf"blocks\.(\d+)\.(norm1|norm2)\.{_P}", ["encoder.layer.{0}.{1}.{2}"], "copy"),
        *_vit_attention("encoder.layer.{0}"),
        (r"blocks\.(\d+)\.ls([12])\.gamma", ["encoder.layer.{0}.layer_scale{1}.lambda1"], "copy"),
        (rf"blocks\.(\d+)\.mlp\.(fc1|fc2|gate_proj|up_proj|down_proj)\.{_P}", ["encoder.layer.{0}.mlp.{1}.{2}"], "copy"),
        (rf"norm\.{_P}", ["layernorm.{0}"], "copy"),
        (rf"head\.{_P}", ["=classifier.{0}"], "copy"),  # classifier(n, pool=cls_mean): ...ForImageClassification
    ],
    "bert": [
        *_BERT_BODY,
        (rf"pooler\.dense\.{_P}", ["pooler.dense.{0}"], "copy"),
        # head: mlm (BertForMaskedLM's cls.predictions; its decoder is the word embedding's weight)
        (rf"mlm\.dense\.{_P}", ["=cls.predictions.transform.dense.{0}"], "copy"),
        (rf"mlm\.norm\.{_P}", ["=cls.predictions.transform.LayerNorm.{0}"], "copy"),
        (r"mlm_bias", ["=cls.predictions.bias"], "copy"),
        (rf"mlm_decoder\.{_P}", ["=cls.predictions.decoder.{0}"], "copy"),  # mlm(tied=false)
        (rf"seq_relationship\.{_P}", ["=cls.seq_relationship.{0}"], "copy"),  # mlm(nsp=true): BertForPreTraining
        (rf"head\.{_P}", ["=classifier.{0}"], "copy"),  # classifier: BertFor{Sequence,Token}Classification
        (rf"qa_outputs\.{_P}", ["=qa_outputs.{0}"], "copy"),  # span: BertForQuestionAnswering
    ],
    "roberta": [  # RoBERTa, XLM-R: BERT's body; RobertaLMHead (`lm_head`), RobertaClassificationHead (`classifier`)
        *_BERT_BODY,
        # head: pooler (RobertaModel); classifier(n, pool=pooler): the classification head's dense and out_proj
        (rf"pooler\.dense\.{_P}", ["=classifier.dense.{0}", "pooler.dense.{0}"], "copy"),
        (rf"head\.{_P}", ["=classifier.out_proj.{0}", "=classifier.{0}"], "copy"),  # pool=tokens: `classifier`
        (rf"mlm\.dense\.{_P}", ["=lm_head.dense.{0}"], "copy"),
        (rf"mlm\.norm\.{_P}", ["=lm_head.layer_norm.{0}"], "copy"),
        (r"mlm_bias", ["=lm_head.bias"], "copy"),
        (rf"mlm_decoder\.{_P}", ["=lm_head.decoder.{0}"], "copy"),  # mlm(tied=false)
        (rf"qa_outputs\.{_P}", ["=qa_outputs.{0}"], "copy"),
    ],
    "electra": [  # ElectraModel (BERT's body, `embeddings_project`) and its heads at the root
        *_BERT_BODY,
        (rf"embed\.proj\.{_P}", ["embeddings_project.{0}"], "copy"),
        (rf"discriminator\.dense\.{_P}", ["=discriminator_predictions.dense.{0}"], "copy"),  # ElectraForPreTraining
        (rf"discriminator\.prediction\.{_P}", ["=discriminator_predictions.dense_prediction.{0}"], "copy"),
        (rf"mlm\.dense\.{_P}", ["=generator_predictions.dense.{0}"], "copy"),  # ElectraForMaskedLM
        (rf"mlm\.norm\.{_P}", ["=generator_predictions.LayerNorm.{0}"], "copy"),
        (r"mlm_bias", ["=generator_lm_head.bias"], "copy"),
        (rf"mlm_decoder\.{_P}", ["=generator_lm_head.{0}"], "copy"),  # mlm(tied=false)
        (rf"transform\.dense\.{_P}", ["=classifier.dense.{0}"], "copy"),  # ElectraClassificationHead
        (rf"head\.{_P}", ["=classifier.out_proj.{0}", "=classifier.{0}"], "copy"),
        (rf"qa_outputs\.{_P}", ["=qa_outputs.{0}"], "copy"),
    ],
    "opt": [  # OPTDecoder (`model.decoder`, `decoder` in OPTModel); lm_head tied to embed_tokens
        (r"embed\.tokens\.weight", ["embed_tokens.weight"], "copy"),
        (r"embed\.pos\.weight", ["embed_positions.weight"], "copy"),
        (rf"blocks\.(\d+)\.attn\.(q|k|v)\.{_P}", ["layers.{0}.self_attn.{1}_proj.{2}"], "copy"),
        (rf"blocks\.(\d+)\.attn\.proj\.{_P}", ["layers.{0}.self_attn.out_proj.{1}"], "copy"),
        (rf"blocks\.(\d+)\.norm1\.{_P}", ["layers.{0}.self_attn_layer_norm.{1}"], "copy"),
        (rf"blocks\.(\d+)\.mlp\.(fc1|fc2)\.{_P}", ["layers.{0}.{1}.{2}"], "copy"),
        (rf"blocks\.(\d+)\.norm2\.{_P}", ["layers.{0}.final_layer_norm.{1}"], "copy"),
        (rf"norm\.{_P}", ["final_layer_norm.{0}"], "copy"),
        (r"lm_head\.weight", ["=lm_head.weight"], "copy"),  # lm(tied=false)
        (rf"(?:head|score)\.{_P}", ["=score.{0}"], "copy"),  # OPTForSequenceClassification
        (rf"qa_outputs\.{_P}", ["=qa_outputs.{0}"], "copy"),
    ],
    "distilbert": [  # DistilBertModel (`transformer.layer.{i}`) and its heads at the root
        (r"embed\.tokens\.weight", ["embeddings.word_embeddings.weight"], "copy"),
        (r"embed\.pos\.weight", ["embeddings.position_embeddings.weight"], "copy"),
        (rf"embed\.norm\.{_P}", ["embeddings.LayerNorm.{0}"], "copy"),
        (rf"blocks\.(\d+)\.attn\.(q|k|v)\.{_P}", ["transformer.layer.{0}.attention.{1}_lin.{2}"], "copy"),
        (rf"blocks\.(\d+)\.attn\.proj\.{_P}", ["transformer.layer.{0}.attention.out_lin.{1}"], "copy"),
        (rf"blocks\.(\d+)\.norm1\.{_P}", ["transformer.layer.{0}.sa_layer_norm.{1}"], "copy"),
        (rf"blocks\.(\d+)\.mlp\.fc(1|2)\.{_P}", ["transformer.layer.{0}.ffn.lin{1}.{2}"], "copy"),
        (rf"blocks\.(\d+)\.norm2\.{_P}", ["transformer.layer.{0}.output_layer_norm.{1}"], "copy"),
        (rf"mlm\.dense\.{_P}", ["=vocab_transform.{0}"], "copy"),  # DistilBertForMaskedLM
        (rf"mlm\.norm\.{_P}", ["=vocab_layer_norm.{0}"], "copy"),
        (r"mlm_bias", ["=vocab_projector.bias"], "copy"),
        (rf"mlm_decoder\.{_P}", ["=vocab_projector.{0}"], "copy"),  # mlm(tied=false)
        (rf"transform\.dense\.{_P}", ["=pre_classifier.{0}"], "copy"),  # DistilBertForSequenceClassification
        (rf"head\.{_P}", ["=classifier.{0}"], "copy"),
        (rf"qa_outputs\.{_P}", ["=qa_outputs.{0}"], "copy"),
    ],
    "gpt2": [
        (r"embed\.tokens\.weight", ["wte.weight"], "copy"),
        (r"embed\.pos\.weight", ["wpe.weight"], "copy"),
        (rf"blocks\.(\d+)\.norm1\.{_P}", ["h.{0}.ln_1.{1}"], "copy"),
        (rf"blocks\.(\d+)\.norm2\.{_P}", ["h.{0}.ln_2.{1}"], "copy"),
        (r"blocks\.(\d+)\.attn\.q\.weight", ["h.{0}.attn.c_attn.weight"], ("T_part", 0)),
        (r"blocks\.(\d+)\.attn\.k\.weight", ["h.{0}.attn.c_attn.weight"], ("T_part", 1)),
        (r"blocks\.(\d+)\.attn\.v\.weight", ["h.{0}.attn.c_attn.weight"], ("T_part", 2)),
        (r"blocks\.(\d+)\.attn\.q\.bias", ["h.{0}.attn.c_attn.bias"], ("part", 0)),
        (r"blocks\.(\d+)\.attn\.k\.bias", ["h.{0}.attn.c_attn.bias"], ("part", 1)),
        (r"blocks\.(\d+)\.attn\.v\.bias", ["h.{0}.attn.c_attn.bias"], ("part", 2)),
        (r"blocks\.(\d+)\.attn\.proj\.weight", ["h.{0}.attn.c_proj.weight"], "T"),
        (r"blocks\.(\d+)\.attn\.proj\.bias", ["h.{0}.attn.c_proj.bias"], "copy"),
        (r"blocks\.(\d+)\.mlp\.fc1\.weight", ["h.{0}.mlp.c_fc.weight"], "T"),
        (r"blocks\.(\d+)\.mlp\.fc1\.bias", ["h.{0}.mlp.c_fc.bias"], "copy"),
        (r"blocks\.(\d+)\.mlp\.fc2\.weight", ["h.{0}.mlp.c_proj.weight"], "T"),
        (r"blocks\.(\d+)\.mlp\.fc2\.bias", ["h.{0}.mlp.c_proj.bias"], "copy"),
        (rf"norm\.{_P}", ["ln_f.{0}"], "copy"),
        (r"lm_head\.weight", ["=lm_head.weight"], "copy"),  # head: lm(tied=false) (tie_word_embeddings false)
        # classifier: GPT2ForSequenceClassification's `score`, GPT2ForTokenClassification's `classifier`
        (rf"head\.{_P}", ["=score.{0}", "=classifier.{0}"], "copy"),
        (rf"qa_outputs\.{_P}", ["=qa_outputs.{0}"], "copy"),  # span: GPT2ForQuestionAnswering
    ],
    "torch_transformer": [
        (r"(encoder|decoder)\.blocks\.(\d+)\.attn\.([qkv])\.weight", ["{0}.layers.{1}.self_attn.in_proj_weight"], "qkv"),
        (r"(encoder|decoder)\.blocks\.(\d+)\.attn\.([qkv])\.bias", ["{0}.layers.{1}.self_attn.in_proj_bias"], "qkv"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.attn\.proj\.{_P}", ["{0}.layers.{1}.self_attn.out_proj.{2}"], "copy"),
        (r"decoder\.blocks\.(\d+)\.cross_attn\.([qkv])\.weight", ["decoder.layers.{0}.multihead_attn.in_proj_weight"], "qkv"),
        (r"decoder\.blocks\.(\d+)\.cross_attn\.([qkv])\.bias", ["decoder.layers.{0}.multihead_attn.in_proj_bias"], "qkv"),
        (rf"decoder\.blocks\.(\d+)\.cross_attn\.proj\.{_P}", ["decoder.layers.{0}.multihead_attn.out_proj.{1}"], "copy"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.norm([123])\.{_P}", ["{0}.layers.{1}.norm{2}.{3}"], "copy"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.mlp\.fc1\.{_P}", ["{0}.layers.{1}.linear1.{2}"], "copy"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.mlp\.fc2\.{_P}", ["{0}.layers.{1}.linear2.{2}"], "copy"),
        (rf"(encoder|decoder)\.norm\.{_P}", ["{0}.norm.{1}"], "copy"),
    ],
    # Hugging Face PvtForImageClassification (PVT v1): per-stage `patch_embeddings.{i}` (stage 0's
    # is graphspec's spec-level patch embedding; stages 1-3 graphspec's `layers.{i-1}.downsample`,
    # which ends the stage before), blocks `block.{i}.{j}` with `attention.self.sequence_reduction`.
    "pvt": [
        (rf"patch_embed\.proj\.{_P}", ["patch_embeddings.0.projection.{0}"], "copy"),
        (rf"patch_embed\.norm\.{_P}", ["patch_embeddings.0.layer_norm.{0}"], "copy"),
        (r"pos_embed", ["patch_embeddings.0.position_embeddings"], "copy"),
        (rf"layers\.(\d+)\.downsample\.proj\.{_P}", [lambda i, p: f"patch_embeddings.{int(i) + 1}.projection.{p}"], "copy"),
        (rf"layers\.(\d+)\.downsample\.norm\.{_P}", [lambda i, p: f"patch_embeddings.{int(i) + 1}.layer_norm.{p}"], "copy"),
        (r"layers\.(\d+)\.downsample\.pos_embed", [lambda i: f"patch_embeddings.{int(i) + 1}.position_embeddings"], "copy"),
        (r"layers\.(\d+)\.downsample\.cls\.token", [lambda i: f"patch_embeddings.{int(i) + 1}.cls_token"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.norm1\.{_P}", ["block.{0}.{1}.layer_norm_1.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.norm2\.{_P}", ["block.{0}.{1}.layer_norm_2.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.q\.{_P}", ["block.{0}.{1}.attention.self.query.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.k\.{_P}", ["block.{0}.{1}.attention.self.key.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.v\.{_P}", ["block.{0}.{1}.attention.self.value.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.sr\.proj\.{_P}", ["block.{0}.{1}.attention.self.sequence_reduction.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.sr\.norm\.{_P}", ["block.{0}.{1}.attention.self.layer_norm.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.{_P}", ["block.{0}.{1}.attention.output.dense.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.{_P}", ["block.{0}.{1}.mlp.dense1.{2}"], "copy"),
        (rf"layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.{_P}", ["block.{0}.{1}.mlp.dense2.{2}"], "copy"),
        (rf"norm\.{_P}", ["layer_norm.{0}"], "copy"),
        (rf"head\.{_P}", ["=classifier.{0}"], "copy"),
    ],
    # Hugging Face T5Model: `shared` embedding, blocks `block.{i}.layer.{0: self-attention,
    # 1: cross-attention (decoder), last: feed-forward}`, the stack's bias table on block 0.
    "t5": [
        (r"embed\.tokens\.weight", ["=shared.weight"], "copy"),
        (r"(encoder|decoder)\.relative_attention_bias\.weight",
         ["{0}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], "copy"),
        (r"(encoder|decoder)\.blocks\.(\d+)\.attn\.([qkv])\.weight", ["{0}.block.{1}.layer.0.SelfAttention.{2}.weight"], "copy"),
        (r"(encoder|decoder)\.blocks\.(\d+)\.attn\.proj\.weight", ["{0}.block.{1}.layer.0.SelfAttention.o.weight"], "copy"),
        (r"decoder\.blocks\.(\d+)\.cross_attn\.([qkv])\.weight", ["decoder.block.{0}.layer.1.EncDecAttention.{1}.weight"], "copy"),
        (r"decoder\.blocks\.(\d+)\.cross_attn\.proj\.weight", ["decoder.block.{0}.layer.1.EncDecAttention.o.weight"], "copy"),
        (r"(encoder|decoder)\.blocks\.(\d+)\.norm([123])\.weight",
         [lambda s, i, n: f"{s}.block.{i}.layer.{int(n) - 1}.layer_norm.weight"], "copy"),
        (r"encoder\.blocks\.(\d+)\.mlp\.fc1\.weight", ["encoder.block.{0}.layer.1.DenseReluDense.wi.weight"], "copy"),
        (r"encoder\.blocks\.(\d+)\.mlp\.fc2\.weight", ["encoder.block.{0}.layer.1.DenseReluDense.wo.weight"], "copy"),
        (r"decoder\.blocks\.(\d+)\.mlp\.fc1\.weight", ["decoder.block.{0}.layer.2.DenseReluDense.wi.weight"], "copy"),
        (r"decoder\.blocks\.(\d+)\.mlp\.fc2\.weight", ["decoder.block.{0}.layer.2.DenseReluDense.wo.weight"], "copy"),
        (r"(encoder|decoder)\.norm\.weight", ["{0}.final_layer_norm.weight"], "copy"),
    ],
    # Hugging Face DetrForObjectDetection (transformers 5.x) with its own ResNetBackbone
    # (use_timm_backbone=False): stem `embedder.embedder`, bottleneck `layer.0/1/2` + `shortcut`.
    "detr": [
        (r"backbone\.conv1\.weight", ["backbone.model.embedder.embedder.convolution.weight"], "copy"),
        (rf"backbone\.bn1\.{_BN}", ["backbone.model.embedder.embedder.normalization.{0}"], "copy"),
        (r"backbone\.layer(\d)\.(\d+)\.conv(\d)\.weight",
         [lambda i, j, k: f"{_stage(i, j)}.layer.{int(k) - 1}.convolution.weight"], "copy"),
        (rf"backbone\.layer(\d)\.(\d+)\.bn(\d)\.{_BN}",
         [lambda i, j, k, w: f"{_stage(i, j)}.layer.{int(k) - 1}.normalization.{w}"], "copy"),
        (r"backbone\.layer(\d)\.(\d+)\.downsample\.0\.weight",
         [lambda i, j: f"{_stage(i, j)}.shortcut.convolution.weight"], "copy"),
        (rf"backbone\.layer(\d)\.(\d+)\.downsample\.1\.{_BN}",
         [lambda i, j, w: f"{_stage(i, j)}.shortcut.normalization.{w}"], "copy"),
        (rf"input_proj\.{_P}", ["input_projection.{0}"], "copy"),
        (r"query_embed\.weight", ["query_position_embeddings.weight"], "copy"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.attn\.([qkv])\.{_P}", ["{0}.layers.{1}.self_attn.{2}_proj.{3}"], "copy"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.attn\.proj\.{_P}", ["{0}.layers.{1}.self_attn.o_proj.{2}"], "copy"),
        (rf"decoder\.blocks\.(\d+)\.cross_attn\.([qkv])\.{_P}", ["decoder.layers.{0}.encoder_attn.{1}_proj.{2}"], "copy"),
        (rf"decoder\.blocks\.(\d+)\.cross_attn\.proj\.{_P}", ["decoder.layers.{0}.encoder_attn.o_proj.{1}"], "copy"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.norm1\.{_P}", ["{0}.layers.{1}.self_attn_layer_norm.{2}"], "copy"),
        (rf"encoder\.blocks\.(\d+)\.norm2\.{_P}", ["encoder.layers.{0}.final_layer_norm.{1}"], "copy"),
        (rf"decoder\.blocks\.(\d+)\.norm2\.{_P}", ["decoder.layers.{0}.encoder_attn_layer_norm.{1}"], "copy"),
        (rf"decoder\.blocks\.(\d+)\.norm3\.{_P}", ["decoder.layers.{0}.final_layer_norm.{1}"], "copy"),
        (rf"(encoder|decoder)\.blocks\.(\d+)\.mlp\.fc([12])\.{_P}", ["{0}.layers.{1}.mlp.fc{2}.{3}"], "copy"),
        (rf"decoder\.norm\.{_P}", ["decoder.layernorm.{0}"], "copy"),
        (rf"class_embed\.{_P}", ["=class_labels_classifier.{0}"], "copy"),
        (rf"bbox_embed\.layers\.(\d+)\.{_P}", ["=bbox_predictor.layers.{0}.{1}"], "copy"),
    ],
    # Hugging Face SiglipVisionModel (SigLIP's vision tower; `vision_model.` inside SiglipModel): no
    # class token, an nn.Embedding of positions (N, d) for graphspec's (1, N, d) `pos_embed`, and the
    # MAP head's nn.MultiheadAttention with q|k|v packed in `in_proj_weight` (`attn.kv` once fused).
    "siglip_vision_model": [
        (rf"patch_embed\.proj\.{_P}", ["embeddings.patch_embedding.{0}"], "copy"),
        (r"pos_embed", ["embeddings.position_embedding.weight"], "unsqueeze"),
        (rf"blocks\.(\d+)\.norm([12])\.{_P}", ["encoder.layers.{0}.layer_norm{1}.{2}"], "copy"),
        (rf"blocks\.(\d+)\.attn\.([qkv])\.{_P}", ["encoder.layers.{0}.self_attn.{1}_proj.{2}"], "copy"),
        (rf"blocks\.(\d+)\.attn\.proj\.{_P}", ["encoder.layers.{0}.self_attn.out_proj.{1}"], "copy"),
        (rf"blocks\.(\d+)\.mlp\.fc([12])\.{_P}", ["encoder.layers.{0}.mlp.fc{1}.{2}"], "copy"),
        (rf"norm\.{_P}", ["post_layernorm.{0}"], "copy"),
        (r"attn_pool\.latent", ["head.probe"], "copy"),
        (r"attn_pool\.attn\.([qkv])\.weight", ["head.attention.in_proj_weight"], "qkv"),
        (r"attn_pool\.attn\.([qkv])\.bias", ["head.attention.in_proj_bias"], "qkv"),
        (rf"attn_pool\.attn\.proj\.{_P}", ["head.attention.out_proj.{0}"], "copy"),
        (rf"attn_pool\.norm\.{_P}", ["head.layernorm.{0}"], "copy"),
        (rf"attn_pool\.mlp\.fc([12])\.{_P}", ["head.mlp.fc{0}.{1}"], "copy"),
    ],
    # Decoder-only LLMs declared with `names: hf` keep Hugging Face's names: `model.` + the name
    # (`layers.0.self_attn.q_proj.weight`, `mlp.experts.gate_up_proj`), `lm_head` as is.
    "llama": [(r"(.+)", ["{0}"], "copy")],
    "phi": [  # Phi calls the output projection `dense` and the final norm `final_layernorm`
        (rf"layers\.(\d+)\.self_attn\.o_proj\.{_P}", ["layers.{0}.self_attn.dense.{1}"], "copy"),
        (rf"norm\.{_P}", ["final_layernorm.{0}"], "copy"),
        (r"(.+)", ["{0}"], "copy"),
    ],
    "gptj": [  # GPT-J (`transformer.h.{i}`): ln_1, attn.{q,k,v,out}_proj, mlp.fc_in / fc_out, ln_f
        (r"embed_tokens\.weight", ["wte.weight"], "copy"),
        (rf"layers\.(\d+)\.input_layernorm\.{_P}", ["h.{0}.ln_1.{1}"], "copy"),
        (r"layers\.(\d+)\.self_attn\.(q|k|v)_proj\.weight", ["h.{0}.attn.{1}_proj.weight"], "copy"),
        (r"layers\.(\d+)\.self_attn\.o_proj\.weight", ["h.{0}.attn.out_proj.weight"], "copy"),
        (rf"layers\.(\d+)\.mlp\.fc1\.{_P}", ["h.{0}.mlp.fc_in.{1}"], "copy"),
        (rf"layers\.(\d+)\.mlp\.fc2\.{_P}", ["h.{0}.mlp.fc_out.{1}"], "copy"),
        (rf"norm\.{_P}", ["ln_f.{0}"], "copy"),
        (rf"(lm_head|score|qa_outputs)\.{_P}", ["={0}.{1}"], "copy"),
    ],
    "phi3": [  # Phi-3 keeps q|k|v in one `qkv_proj` and gate|up in one `gate_up_proj`
        (r"layers\.(\d+)\.self_attn\.[qkv]_proj\.weight", ["layers.{0}.self_attn.qkv_proj.weight"],
         ("rows", [f"layers.{{0}}.self_attn.{p}_proj.weight" for p in "qkv"])),
        (r"layers\.(\d+)\.mlp\.(?:gate|up)_proj\.weight", ["layers.{0}.mlp.gate_up_proj.weight"],
         ("rows", ["layers.{0}.mlp.gate_proj.weight", "layers.{0}.mlp.up_proj.weight"])),
        (r"(.+)", ["{0}"], "copy"),
    ],
    # ModernBERT (ModernBertModel): q|k|v in one `attn.Wqkv`, GeGLU's input|gate halves in one
    # `mlp.Wi` (HF applies the activation to the first half: graphspec's gate_proj)
    "modernbert": [
        (r"embed\.tokens\.weight", ["embeddings.tok_embeddings.weight"], "copy"),
        (rf"embed\.norm\.{_P}", ["embeddings.norm.{0}"], "copy"),
        (rf"blocks\.(\d+)\.attn\.[qkv]\.{_P}", ["layers.{0}.attn.Wqkv.{1}"],
         ("rows", [f"blocks.{{0}}.attn.{p}.{{1}}" for p in "qkv"])),
        (rf"blocks\.(\d+)\.attn\.proj\.{_P}", ["layers.{0}.attn.Wo.{1}"], "copy"),
        (rf"blocks\.(\d+)\.mlp\.(?:gate|up)_proj\.{_P}", ["layers.{0}.mlp.Wi.{1}"],
         ("rows", ["blocks.{0}.mlp.gate_proj.{1}", "blocks.{0}.mlp.up_proj.{1}"])),
        (rf"blocks\.(\d+)\.mlp\.down_proj\.{_P}", ["layers.{0}.mlp.Wo.{1}"], "copy"),
        (rf"blocks\.(\d+)\.(attn_norm|mlp_norm)\.{_P}", ["layers.{0}.{1}.{2}"], "copy"),
        (rf"norm\.{_P}", ["final_norm.{0}"], "copy"),
        # head: mlm(gelu, eps=1e-5, bias=false) (ModernBertForMaskedLM's head and decoder)
        (rf"mlm\.dense\.{_P}", ["=head.dense.{0}"], "copy"),
        (rf"mlm\.norm\.{_P}", ["=head.norm.{0}"], "copy"),
        (r"mlm_bias", ["=decoder.bias"], "copy"),
        (rf"mlm_decoder\.{_P}", ["=decoder.{0}"], "copy"),  # mlm(tied=false)
        # head: classifier(n, transform=gelu, ...) (ModernBertFor{Sequence,Token}Classification)
        (rf"transform\.(dense|norm)\.{_P}", ["=head.{0}.{1}"], "copy"),
        (rf"(?:head|qa_outputs)\.{_P}", ["=classifier.{0}"], "copy"),  # span: ModernBertForQuestionAnswering
    ],
    # Llama 4 (Llama4ForCausalLM) calls the MLP `feed_forward`, the router `router` and the shared
    # expert `shared_expert`, and stores the experts as (E, in, out): gate_up_proj (E, d, 2·ff),
    # gate columns then up columns; down_proj (E, ff, d)
    "llama4": [
        (r"layers\.(\d+)\.mlp\.gate\.weight", ["layers.{0}.feed_forward.router.weight"], "copy"),
        (r"layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)", ["layers.{0}.feed_forward.experts.{1}"], "swap"),
        (r"layers\.(\d+)\.mlp\.shared_experts\.(.+)", ["layers.{0}.feed_forward.shared_expert.{1}"], "copy"),
        (r"layers\.(\d+)\.mlp\.(.+)", ["layers.{0}.feed_forward.{1}"], "copy"),
        (r"(.+)", ["{0}"], "copy"),
    ],
}

HF_FAMILIES = {"pvt": "pvt", "t5": "t5", "swin": "swin", "vit": "vit", "deit": "deit", "bert": "bert", "gpt2": "gpt2", "detr": "detr",
               "roberta": "roberta", "xlm-roberta": "roberta", "camembert": "roberta", "distilbert": "distilbert", "electra": "electra", "opt": "opt", "gptj": "gptj",
               "llama": "llama", "mistral": "llama", "mixtral": "llama", "phi": "phi", "gpt_oss": "llama",
               "qwen2": "llama", "gemma": "llama", "gemma2": "llama", "qwen3": "llama", "qwen3_moe": "llama", "qwen2_moe": "llama",
               "smollm3": "llama",
               "olmo2": "llama", "phi3": "phi3", "gemma3_text": "llama", "deepseek_v2": "llama", "deepseek_v3": "llama",
               "olmo3": "llama", "glm4_moe": "llama",
               "llama4_text": "llama4", "llama4": "llama4",
               "siglip_vision_model": "siglip_vision_model", "siglip": "siglip_vision_model",
               "dinov2": "dinov2", "dinov2_with_registers": "dinov2", "modernbert": "modernbert"}


# HF tensors, by the end of their name, that the forward pass never reads: importing ignores them,
# exporting writes them as zeros where HF's model has them (its own init). DINOv2's mask_token is
# iBOT's masked-image pre-training only.
UNREAD = {"dinov2": ("embeddings.mask_token",),
          # older GPT-J checkpoints' causal-mask buffers (HF's _keys_to_ignore_on_load_unexpected)
          "gptj": ("attn.bias", "attn.masked_bias")}

# A second name of a tensor -> the end of its first name (HF's `_tied_weights_keys`).
TIED = {"lm_head.weight": ("wte.weight", "embed_tokens.weight", "shared.weight"),  # T5: `shared`
        "cls.predictions.decoder.weight": ("embeddings.word_embeddings.weight",),  # BertForMaskedLM
        "decoder.weight": ("embeddings.tok_embeddings.weight",),  # ModernBertForMaskedLM
        # RobertaForMaskedLM: the decoder is the word embedding's weight and its bias lm_head.bias
        "lm_head.decoder.weight": ("embeddings.word_embeddings.weight",), "lm_head.decoder.bias": ("lm_head.bias",),
        "lm_head.bias": ("lm_head.decoder.bias",),  # untied: HF's unread lm_head.bias gets the decoder's bias
        "vocab_projector.weight": ("embeddings.word_embeddings.weight",),  # DistilBertForMaskedLM
        "generator_lm_head.weight": ("embeddings.word_embeddings.weight",),  # ElectraForMaskedLM
        "cls.predictions.decoder.bias": ("cls.predictions.bias",),
        # untied (tie_word_embeddings false), HF keeps cls.predictions.bias beside the decoder's own bias and
        # never reads it: it gets the decoder's bias
        "cls.predictions.bias": ("cls.predictions.decoder.bias",),
        "encoder.embed_tokens.weight": ("shared.weight",), "decoder.embed_tokens.weight": ("shared.weight",)}


class WeightError(KeyError):
    """A parameter has no counterpart in the other state dict."""


# A mixture of experts as checkpoints store it (one tensor per expert: Mixtral's w1/w3/w2 under
# `block_sparse_moe`, Qwen3-MoE's gate/up/down_proj), what transformers 5's `save_pretrained` writes too.
_EXPERT = re.compile(r"(.*)\.(block_sparse_moe|mlp)\.experts\.(\d+)\.(w1|w3|w2|gate_proj|up_proj|down_proj)\.weight")
_GATE, _UP = ("w1", "gate_proj"), ("w3", "up_proj")


def fused_experts(sd: Mapping[str, Any]) -> dict[str, Any]:
    """`sd` with per-expert tensors stacked as transformers 5's modules hold them (and graphspec
    names them): `<layer>.mlp.experts.gate_up_proj` (E, 2·d_ff, d) = gate rows then up rows per
    expert, `<layer>.mlp.experts.down_proj` (E, d, d_ff), the router `<layer>.mlp.gate.weight`.
    A state dict without such tensors is returned as it is."""
    import torch

    found: dict[str, dict[int, dict[str, Any]]] = {}
    for k, v in sd.items():
        m = _EXPERT.fullmatch(k)
        if m:
            found.setdefault(m[1], {}).setdefault(int(m[3]), {})[m[4]] = v
    if not found:
        return dict(sd)
    out = {k: v for k, v in sd.items() if not _EXPERT.fullmatch(k)}
    for layer, experts in found.items():
        n = len(experts)
        if sorted(experts) != list(range(n)) or any(len(e) != 3 for e in experts.values()):
            raise WeightError(f"{layer}: experts {sorted(experts)[:8]} lack some of their gate, up and down tensors")
        get = lambda e, names: next(e[x] for x in names if x in e)  # noqa: E731
        out[f"{layer}.mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([get(experts[i], _GATE), get(experts[i], _UP)], 0) for i in range(n)])
        out[f"{layer}.mlp.experts.down_proj"] = torch.stack([get(experts[i], ("w2", "down_proj")) for i in range(n)])
        router = f"{layer}.block_sparse_moe.gate.weight"
        if router in out:
            out[f"{layer}.mlp.gate.weight"] = out.pop(router)
    return out


_SWIGLU_IN = re.compile(r"(.*\.mlp)\.weights_(in|out)\.(weight|bias)")


def split_swiglu(sd: Mapping[str, Any]) -> dict[str, Any]:
    """DINOv2-giant checkpoints written before transformers 5 keep its SwiGLU as `mlp.weights_in`
    (gate rows, then up rows: HF's `x1, x2 = weights_in(x).chunk(2)`, silu(x1)·x2) and
    `mlp.weights_out`; `sd` with them as today's `gate_proj`, `up_proj`, `down_proj`."""
    out = {}
    for k, v in sd.items():
        m = _SWIGLU_IN.fullmatch(k)
        if m is None:
            out[k] = v
        elif m[2] == "out":
            out[f"{m[1]}.down_proj.{m[3]}"] = v
        else:
            if v.shape[0] % 2:
                raise WeightError(f"{k}: {v.shape[0]} rows do not split into gate and up halves")
            out[f"{m[1]}.gate_proj.{m[3]}"], out[f"{m[1]}.up_proj.{m[3]}"] = v.chunk(2, dim=0)
    return out


def family_of(model: Any) -> str:
    """'swin' / 'vit' / 'bert' / 'gpt2' / 'detr' for a Hugging Face model, 'torch_transformer' for nn.Transformer."""
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "model_type", None) in HF_FAMILIES:
        return HF_FAMILIES[cfg.model_type]
    import torch.nn as nn

    if isinstance(model, nn.Transformer):
        return "torch_transformer"
    raise ValueError(f"no weight mapping for {type(model).__name__}; known families: {', '.join(RULES)}")


def _rule(family: str, canon: str) -> tuple[list[str], Any]:
    for pattern, names, how in RULES[family]:
        m = re.fullmatch(pattern, canon)
        if m:
            groups = m.groups()
            if how == "qkv":  # the last group is q, k or v: slice of the packed in_proj
                return [_fmt(n, groups[:-1]) for n in names], ("part", "qkv".index(groups[-1]))
            if how[0] == "rows":
                return [_fmt(n, groups) for n in names], ("rows", [_fmt(n, groups) for n in how[1]])
            return [_fmt(n, groups) for n in names], how
    raise WeightError(f"{family}: no rule for the graphspec parameter {canon!r}")


def _fmt(name: Any, groups: tuple) -> str:
    return name(*groups) if callable(name) else name.format(*groups)


def _layout(graph: Graph) -> dict[str, list[str]]:
    """graphspec parameter or buffer -> the unfused names it stands for (one, or q/k/v for a
    fused qkv)."""
    return {name: [c for c, _ in parts] for name, parts in _parts(graph).items()}


_FUSED = re.compile(r"(.*)\.(qkv|qk|kv)(_proj)?\.(weight|bias)")


def _parts(graph: Graph) -> dict[str, list[tuple[str, int | None]]]:
    """graphspec parameter or buffer -> [(unfused name, rows along dim 0)]: one whole tensor
    (rows None), or the parts of a projection fused by `passes.fuse_qkv` (`attn.qkv`, `attn.kv`,
    DETR's `attn.qk`; `self_attn.qkv_proj` under `names: hf`), in q|k|v order. A part's rows are
    the width of the `chunk`/`split` node that reads it (GQA: q is heads·hd wide, k and v
    kv_heads·hd), so an uneven fused tensor is cut where its parts really end."""
    out: dict[str, list[tuple[str, int | None]]] = {}
    for name in [*parameters(graph), *buffers(graph)]:
        m = _FUSED.fullmatch(name)
        if not m:
            out[name] = [(name, None)]
            continue
        owner, suffix = name[: -len(m[4]) - 1], m[3] or ""
        readers = sorted((u for u in graph.users(owner) if u.op in ("chunk", "split")), key=lambda u: u.a["index"]) \
            if owner in graph else []
        if len(readers) == len(m[2]):  # the chunks keep the projections' names (q_proj, ...)
            out[name] = [(f"{u.name}.{m[4]}", u.shape[-1]) for u in readers]
        else:  # no graph node to read widths from: equal parts
            out[name] = [(f"{m[1]}.{p}{suffix}.{m[4]}", None) for p in m[2]]
    return out


def _find(source: Mapping, names: list[str], family: str) -> str:
    for n in names:
        for prefix in ("",) if n.startswith("=") else _LAYER_PREFIXES[family]:
            key = n.lstrip("=") if n.startswith("=") else prefix + n
            if key in source:
                return key
    raise WeightError(f"none of {names} (with prefixes {_LAYER_PREFIXES[family]}) is in the source state dict")


def _rows(graph: Graph) -> dict[str, int]:
    """Unfused graphspec tensor -> its rows (dim 0), for slicing a `rows` source tensor."""
    from graphspec.analysis import tensors

    shapes, out = tensors(graph), {}
    for name, parts in _parts(graph).items():
        for c, r in parts:
            out[c] = int(r if r is not None else shapes[name][0] // len(parts))
    return out


def _take(t, how, canon: str = "", rows: Mapping[str, int] | None = None):
    if how == "copy":
        return t
    if how == "T":
        return t.t()
    if how == "swap":
        return t.transpose(-2, -1)
    if how == "unsqueeze":
        return t.unsqueeze(0)
    kind, k = how
    if kind == "rows":  # k: the graphspec tensors concatenated in `t`, in order
        start = sum(rows[n] for n in k[:k.index(canon)])
        return t[start:start + rows[canon]]
    if kind == "T_part":
        t = t.t()
    n = t.shape[0] // 3
    return t[k * n:(k + 1) * n]


def to_graphspec(source: Any, graph: Graph, family: str | None = None, partial: bool = False) -> dict[str, Any]:
    """A state dict named as `graph`'s parameters, from a HF model / nn.Transformer or its state
    dict. With `partial`, parameters the source lacks are left out (nn.Transformer has no
    embeddings) instead of raising."""
    import torch

    family = family or family_of(source)
    sd = source.state_dict() if hasattr(source, "state_dict") else source
    out = {}
    rows = _rows(graph)
    for name, canon in _layout(graph).items():
        parts = []
        try:
            for c in canon:
                names, how = _rule(family, c)
                parts.append(_take(sd[_find(sd, names, family)], how, c, rows))
        except WeightError:
            if partial:
                continue
            raise
        out[name] = (parts[0] if len(parts) == 1 else torch.cat(parts, 0)).detach().clone().contiguous()
    return out


def from_graphspec(state: Mapping[str, Any], graph: Graph, family: str, like: Mapping | None = None,
                   partial: bool = False) -> dict[str, Any]:
    """A state dict for the other side from graphspec's. `like` (the target's own state dict)
    picks the naming generation and prefix that the target uses, and receives tied copies;
    `partial` leaves out parameters the target has no place for."""
    import torch

    packed: dict[str, dict[int, Any]] = {}
    packed_how: dict[str, str] = {}
    packed_n: dict[str, int] = {}
    out: dict[str, Any] = {}
    for name, canon in _parts(graph).items():
        t = state[name]
        rows = [r for _, r in canon]
        chunks = [t] if len(canon) == 1 else t.split(rows, 0) if None not in rows else t.chunk(len(canon), 0)
        for (c, _), part in zip(canon, chunks, strict=True):
            try:
                names, how = _rule(family, c)
                key = _target(names, family, like)
            except WeightError:
                if partial:
                    continue
                raise
            if how == "copy":
                out[key] = part
            elif how == "T":
                out[key] = part.t()
            elif how == "unsqueeze":
                out[key] = part.squeeze(0)
            elif how == "swap":
                out[key] = part.transpose(-2, -1)
            elif how[0] == "rows":
                packed.setdefault(key, {})[how[1].index(c)] = part
                packed_how[key], packed_n[key] = "rows", len(how[1])
            else:
                packed.setdefault(key, {})[how[1]] = part
                packed_how[key] = how[0]
    for key, parts in packed.items():
        n = packed_n.get(key, 3)
        if sorted(parts) != list(range(n)):
            raise WeightError(f"{key} packs {n} tensors; graphspec has {len(parts)} of them")
        whole = torch.cat([parts[k] for k in range(n)], 0)
        out[key] = whole.t() if packed_how[key] == "T_part" else whole
    if like is not None:  # tied weights the target stores twice (GPT-2's lm_head; Gemma's, Qwen's embed_tokens)
        for key in like:
            if key not in out and key in TIED:
                src = next((k for k in out if k.endswith(TIED[key])), None)
                if src is not None:
                    out[key] = out[src]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _target(names: list[str], family: str, like: Mapping | None) -> str:
    if like is not None:
        return _find(like, names, family)
    n = names[0]
    return n.lstrip("=") if n.startswith("=") else n


def name_map(graph: Graph, family: str, like: Mapping | None = None) -> dict[str, list[str]]:
    """{graphspec parameter or buffer: the other side's names it stands for} (several for a
    fused `qkv`), as `from_graphspec` would write them; `like` picks the naming generation."""
    return {name: [_target(_rule(family, c)[0], family, like) for c in canon]
            for name, canon in _layout(graph).items()}
