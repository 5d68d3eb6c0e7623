"""Hugging Face reference models of the T5 and PVT families, built from Config objects (no hub).

    cfg = t5_base()                       # transformers.T5Config of T5-base
    n_params(meta(transformers.T5Model, cfg)) == 222_903_552

`meta` builds a model on the meta device (no memory for the weights: parameter counts of
full-size models cost nothing); `small_*` are the configs the numerics tests run. Counting
follows `model.parameters()`, which yields a tied or shared tensor once (T5's `shared`
embedding is the encoder's and the decoder's `embed_tokens`).
"""

from __future__ import annotations

import torch
import transformers

# T5-base (Raffel et al. 2020, Table 14 "Base": d_model 768, d_ff 3072, d_kv 64, 12 heads, 12 + 12
# layers; 32 buckets, max distance 128; the SentencePiece vocabulary padded to 32128).
T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12,
               num_heads=12, relative_attention_num_buckets=32, relative_attention_max_distance=128,
               feed_forward_proj="relu", dropout_rate=0.0, layer_norm_epsilon=1e-6)

# PVT (Wang et al. 2021, Table 1): widths 64-128-320-512, heads 1-2-5-8, SRA ratios 8-4-2-1, MLP
# ratios 8-8-4-4, patch sizes 4-2-2-2. Tiny: depths 2-2-2-2; Small: 3-4-6-3.
PVT_TINY = dict(image_size=224, depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
                sequence_reduction_ratios=[8, 4, 2, 1], mlp_ratios=[8, 8, 4, 4], patch_sizes=[4, 2, 2, 2],
                strides=[4, 2, 2, 2], num_labels=1000)
PVT_SMALL = {**PVT_TINY, "depths": [3, 4, 6, 3]}


def t5_config(**kw) -> transformers.T5Config:
    return transformers.T5Config(**{**T5_BASE, **kw})


def pvt_config(depths=(3, 4, 6, 3), **kw) -> transformers.PvtConfig:
    return transformers.PvtConfig(**{**PVT_SMALL, "depths": list(depths), **kw})


def meta(cls, cfg):
    """`cls(cfg)` on the meta device: shapes only."""
    with torch.device("meta"):
        return cls(cfg)


def n_params(*modules: torch.nn.Module) -> int:
    """Unique parameters, as `model.parameters()` yields a shared weight once."""
    return sum({id(p): p.numel() for m in modules for p in m.parameters()}.values())


# Small configurations for numerics (fp32, CPU, a fraction of a second each).
SMALL_T5 = dict(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=16)
SMALL_PVT = dict(image_size=64, depths=[2, 1, 2, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 2, 3, 4],
                 sequence_reduction_ratios=[4, 2, 2, 1], mlp_ratios=[4, 4, 2, 2], patch_sizes=[4, 2, 2, 2],
                 strides=[4, 2, 2, 2], num_labels=10)


def perturbed(model, seed=0):
    """Move every parameter off its default init (zero biases, unit norms) by N(0, 0.02²) noise, so
    that a weight mapped to the wrong place shows in the output; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()
