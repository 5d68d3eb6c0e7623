"""Independent implementations agree with the IR: Hugging Face models and torch.nn.Transformer
built from config objects with random weights (no downloads), parameter counts per module,
and torch's FlopCounterMode on real forward passes.

NB: FlopCounterMode counts 2 FLOPs per multiply-accumulate, and counts SDPA as 0 on CPU, so
the configs ask for attn_implementation="eager" (explicit matmuls, which it counts).
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import graphspec  # noqa: E402
from graphspec import analysis  # noqa: E402


def n_params(*modules: torch.nn.Module) -> int:
    """Unique parameters, as `model.parameters()` yields a tied weight once."""
    seen = {id(p): p.numel() for m in modules for p in m.parameters()}
    return sum(seen.values())


def ir_rows(name: str, depth: int = 1, overrides=()) -> dict[str, int]:
    g = graphspec.load(name, list(overrides)).graph
    return {k: v["params"] for k, v in analysis.by_module(g, depth=depth).items()}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- parameters -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, cfg", [
    ("bert_base", {}),
    ("bert_large", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)),
])
def test_bert_model(name, cfg):
    hf = transformers.BertModel(transformers.BertConfig(**cfg))  # embeddings + encoder + pooler
    ir = ir_rows(name)
    assert n_params(hf) == graphspec.load(name).params()
    assert n_params(hf.embeddings) == ir["embed"]  # word + position + token type + LayerNorm
    for i, layer in enumerate(hf.encoder.layer):
        assert n_params(layer) == ir[f"blocks.{i}"]
    assert n_params(hf.pooler) == ir["pooler"]


def test_gpt2_model():
    lm = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    hf = lm.transformer  # a GPT2Model
    ir = ir_rows("gpt2")
    assert n_params(hf) == graphspec.load("gpt2").params() == 124_439_808
    assert n_params(hf.wte, hf.wpe) == ir["embed"]  # (50257 + 1024)·768 = 39,383,808
    assert n_params(hf.h[0]) == ir["blocks.0"]
    assert n_params(hf.ln_f) == ir["norm"]
    # HF's LM head is tied to wte: parameters() yields it once, as the IR counts it once.
    assert lm.lm_head.weight is lm.transformer.wte.weight
    assert n_params(lm) == 124_439_808 and ir["lm_head"] == 0


def test_openai_gpt_model():
    hf = transformers.OpenAIGPTModel(transformers.OpenAIGPTConfig())  # vocab 40478, n_positions 512
    ir = ir_rows("gpt")
    assert n_params(hf) == graphspec.load("gpt").params() == 116_534_784
    assert n_params(hf.tokens_embed, hf.positions_embed) == ir["embed"]  # (40478 + 512)·768
    assert n_params(hf.h[0]) == ir["blocks.0"]


def test_vit_b16():
    cfg = transformers.ViTConfig(num_labels=1000)  # ViT-B/16 at 224 by default
    # HF ViTModel adds a pooler (dense + tanh on [CLS]) by default; timm/torchvision ViT-B/16 has
    # none, so compare the backbone without it, then the classifier separately.
    backbone = transformers.ViTModel(cfg, add_pooling_layer=False)
    ir = ir_rows("vit_b16")
    assert n_params(backbone) == graphspec.load("vit_b16").params() - ir["head"] == 85_798_656
    assert n_params(backbone.embeddings) == ir["patch_embed"] + ir["cls_token"] + ir["pos_embed"]
    assert n_params(backbone.layers[0]) == ir["blocks.0"]
    assert n_params(backbone.layernorm) == ir["norm"]
    clf = transformers.ViTForImageClassification(cfg)  # ViTModel(add_pooling_layer=False) + Linear
    assert n_params(clf) == graphspec.load("vit_b16").params() == 86_567_656
    assert n_params(clf.classifier) == ir["head"] == 768 * 1000 + 1000
    pooled = transformers.ViTModel(cfg)  # with the pooler: + 768² + 768
    assert n_params(pooled) - n_params(backbone) == 768 * 768 + 768


def test_swin_t():
    cfg = transformers.SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                                  image_size=224, num_labels=1000)
    hf = transformers.SwinForImageClassification(cfg)
    ir = ir_rows("swin_t")
    assert n_params(hf) == graphspec.load("swin_t").params() == 28_288_354
    assert n_params(hf.swin.embeddings) == ir["patch_embed"]  # conv + LayerNorm; no absolute positions
    for i, stage in enumerate(hf.swin.encoder.layers):  # blocks + the stage's PatchMerging
        assert n_params(stage) == ir[f"layers.{i}"]
    assert n_params(hf.swin.layernorm) == ir["norm"]
    assert n_params(hf.classifier) == ir["head"]


def test_torch_nn_transformer():
    tr = torch.nn.Transformer(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                              dim_feedforward=2048, batch_first=True)
    ir = ir_rows("transformer_base", depth=2)
    # nn.Transformer has no embeddings (and no output projection), and adds a final LayerNorm
    # to both the encoder and the decoder (2 × 2·512 = 2,048) that Vaswani's layout lacks.
    embeddings = ir["embed.tokens"]  # 37000·512 = 18,944,000, shared 3 ways, counted once
    final_norms = n_params(tr.encoder.norm, tr.decoder.norm)
    assert (embeddings, final_norms) == (18_944_000, 2_048)
    assert n_params(tr) == graphspec.load("transformer_base").params() - embeddings + final_norms == 44_140_544
    enc = ir_rows("transformer_base", depth=2)
    assert n_params(tr.encoder.layers[0]) == sum(v for k, v in enc.items() if k.startswith("encoder.blocks.0"))
    assert n_params(tr.decoder.layers[0]) == sum(v for k, v in enc.items() if k.startswith("decoder.blocks.0"))


# -- MACs against torch's FlopCounterMode ---------------------------------------------------
def counted_flops(model: torch.nn.Module, *args) -> int:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(*args)
    return fc.get_total_flops()


def test_flop_counter_gpt2():
    lm = transformers.GPT2LMHeadModel(transformers.GPT2Config(attn_implementation="eager"))
    flops = counted_flops(lm, torch.zeros(1, 128, dtype=torch.long))
    # 2 × (12·(12·128·768² + 2·128²·768) + 128·768·50257) = 2 × 16,114,089,984
    assert flops == 2 * graphspec.load("gpt2").macs() == 32_228_179_968


def test_flop_counter_vit_b16():
    clf = transformers.ViTForImageClassification(
        transformers.ViTConfig(num_labels=1000, attn_implementation="eager"))
    flops = counted_flops(clf, torch.zeros(1, 3, 224, 224))
    # torchvision _ops 17.564 G MACs = 17,563,828,224; FlopCounterMode reports 2×MAC
    assert flops == 2 * graphspec.load("vit_b16").macs() == 35_127_656_448


def test_flop_counter_swin_t():
    cfg = transformers.SwinConfig(num_labels=1000, attn_implementation="eager")  # Swin-T defaults
    flops = counted_flops(transformers.SwinForImageClassification(cfg), torch.zeros(1, 3, 224, 224))
    # torchvision swin_t _ops 4.491: 2 × 4,490,566,656 (windowed attention, 7×7 windows)
    assert flops == 2 * graphspec.load("swin_t").macs() == 8_981_133_312
