"""T5 (Raffel et al. 2020): the relative position buckets and their bias op against Hugging Face's
T5Attention; the bundled t5_base against T5Model on the meta device (parameters to the unit) and
FlopCounterMode; a small T5's generated module with HF weights against HF, both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402
from graphspec.codegen import emit, load  # noqa: E402
from graphspec.codegen.fx import runtime  # noqa: E402
from transformers.models.t5.modeling_t5 import T5Attention  # noqa: E402

import graphspec  # noqa: E402
from graphspec import analysis  # noqa: E402
from graphspec.ops import get  # noqa: E402
from graphspec.ops.t5 import relative_buckets  # noqa: E402
from graphspec.weights import from_graphspec, to_graphspec  # noqa: E402

# (num_buckets, max_distance): T5's own, small ones, and boundaries where log(d/max_exact) /
# log(max_distance/max_exact) · (buckets − max_exact) is an exact integer (d = 16, 32, 64 at 32/128)
BUCKETS = [(32, 128), (8, 16), (16, 64), (64, 256), (10, 20), (6, 7)]


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", BUCKETS)
def test_buckets_match_hf(num_buckets, max_distance, bidirectional):
    n = 600  # past max_distance for every row above: the clamp to the last bucket shows
    rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]
    want = T5Attention._relative_position_bucket(rel, bidirectional=bidirectional, num_buckets=num_buckets,
                                                 max_distance=max_distance)
    got = relative_buckets(n, bidirectional, num_buckets, max_distance)
    assert np.array_equal(got, want.numpy())
    # the generated file's helper (codegen/templates/helpers.py.j2) computes the same buckets
    helper = runtime().relative_buckets(n, bidirectional, num_buckets, max_distance)
    assert torch.equal(helper, want)


def test_bucket_layout_by_hand():
    # 8 buckets, max distance 16, bidirectional: 4 per direction, exact below 2, then
    # 2 + floor(2·log(d/2)/log 8): 2 for 2 ≤ d < 2·√8 ≈ 5.66, 3 (the last) from d = 6 on
    row = relative_buckets(20, True, 8, 16)[0]  # query 0: keys to the right (j > i), +4 offset
    assert row[:8].tolist() == [0, 4 + 1, 4 + 2, 4 + 2, 4 + 2, 4 + 2, 4 + 3, 4 + 3]
    col = relative_buckets(20, False, 8, 16)[:, 0]  # unidirectional, query i looking back i tokens
    # 8 buckets: exact below 4, then 4 + floor(log(d/4)/log(4)·4), clamped to 7
    assert col[:10].tolist() == [0, 1, 2, 3, 4, 4, 5, 5, 6, 6]
    assert col[16:].tolist() == [7] * 4


@pytest.mark.parametrize("is_decoder", [False, True])
def test_bias_op_matches_hf_compute_bias(is_decoder):
    cfg = transformers.T5Config(**hf_ref.SMALL_T5, is_decoder=is_decoder)
    attn = T5Attention(cfg, has_relative_attention_bias=True, layer_idx=0)
    torch.nn.init.normal_(attn.relative_attention_bias.weight)
    N, heads = 21, cfg.num_heads
    d = get("relative_bucket_bias")
    attrs = dict(heads=heads, bidirectional=not is_decoder, num_buckets=cfg.relative_attention_num_buckets,
                 max_distance=cfg.relative_attention_max_distance)
    assert d.shape((2, N, 32), **attrs) == (heads, N, N)
    assert d.params((2, N, 32), **attrs) == {"weight": (8, heads)}
    got = d.eval({"weight": attn.relative_attention_bias.weight}, torch.zeros(2, N, 32), **attrs)
    with torch.no_grad():
        want = attn.compute_bias(N, N)  # 1, h, N, N
    assert torch.equal(got, want[0])


def test_t5_base_parameters_on_meta():
    hf = hf_ref.meta(transformers.T5Model, hf_ref.t5_config())
    # shared 32128·768 = 24,674,304; encoder 12·(4·768² + 2·768·3072 + 2·768) + 32·12 + 768
    # = 84,954,240; decoder 12·(8·768² + 2·768·3072 + 3·768) + 32·12 + 768 = 113,275,008
    assert hf_ref.n_params(hf.shared) == 24_674_304
    assert hf_ref.n_params(hf.encoder) - hf_ref.n_params(hf.shared) == 84_954_240
    assert hf_ref.n_params(hf.decoder) - hf_ref.n_params(hf.shared) == 113_275_008
    assert hf_ref.n_params(hf) == 24_674_304 + 84_954_240 + 113_275_008 == 222_903_552
    # one bias table per stack, on layer 0 only
    tables = [k for k, _ in hf.named_parameters() if "relative_attention_bias" in k]
    assert tables == ["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                      "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]


def test_generated_attention_keeps_the_causal_mask_beside_a_bias():
    """T5's decoder self-attention is fused with both a bias and the causal mask: the generated
    file's `attention` helper must apply both, as the op's eval rule does."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 8) for _ in range(3))
    bias = torch.randn(4, 7, 7)
    want = get("attention").eval({}, q, k, v, bias, scale=1.0, causal=True, has_bias=True)
    got = runtime().attention(q, k, v, bias=bias, scale=1.0, is_causal=True)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(runtime().attention(q, k, v, bias=bias, scale=1.0), want, atol=1e-3)
    from graphspec.ops.attention import _sdpa_call

    attrs = dict(scale=1.0, dropout=0.0, causal=True, has_bias=True)
    assert _sdpa_call(["q", "k", "v", "bias"], attrs) == "attention(q, k, v, bias=bias, scale=1.0, is_causal=True)"


# -- the bundled spec against Hugging Face's T5Model ----------------------------------------------


def ir_rows(name: str, overrides=(), depth: int = 2) -> dict[str, int]:
    g = graphspec.load(name, list(overrides)).graph
    return {k: v["params"] for k, v in analysis.by_module(g, depth=depth).items()}


def test_t5_base_parameters_to_the_unit():
    hf = hf_ref.meta(transformers.T5Model, hf_ref.t5_config())
    m = graphspec.load("t5_base")
    assert m.params() == hf_ref.n_params(hf) == 222_903_552
    rows = ir_rows("t5_base", depth=2)
    # one block of each stack, and the shared table (counted once, as parameters() yields it once)
    assert rows["encoder.blocks.0"] == hf_ref.n_params(hf.encoder.block[1]) == 7_079_424
    assert rows["decoder.blocks.0"] == hf_ref.n_params(hf.decoder.block[1]) == 9_439_488
    assert rows["embed.tokens"] == hf_ref.n_params(hf.shared) == 32128 * 768
    assert rows["encoder.relative_attention_bias"] == rows["decoder.relative_attention_bias"] == 32 * 12


def test_t5_base_macs_formula_and_flop_counter_on_a_small_t5():
    # N = T = 128: encoder 12·(4Nd² + 2N²d + 2N·d·d_ff), decoder 12·(8Nd² + 4N²d + 2N·d·d_ff)
    N, d, f = 128, 768, 3072
    enc, dec = 4 * N * d * d + 2 * N * N * d + 2 * N * d * f, 8 * N * d * d + 4 * N * N * d + 2 * N * d * f
    assert (enc, dec) == (931_135_488, 1_258_291_200)
    assert graphspec.load("t5_base").macs() == 12 * enc + 12 * dec == 26_273_120_256
    from torch.utils.flop_counter import FlopCounterMode

    cfg = transformers.T5Config(**hf_ref.SMALL_T5, attn_implementation="eager")
    hf = transformers.T5Model(cfg).eval()
    src, tgt = torch.zeros(1, 20, dtype=torch.long), torch.zeros(1, 13, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        hf(input_ids=src, decoder_input_ids=tgt)
    assert fc.get_total_flops() == 2 * graphspec.load("t5_base", SMALL_SETS + ["seq_len=20", "tgt_len=13"]).macs()


SMALL_SETS = ["d_model=32", "heads=4", "d_ff=64", "L=2", "vocab=100", "buckets=8", "max_distance=16"]


@pytest.mark.parametrize("passes", ["none", "default"])
def test_small_t5_matches_hf(passes):
    """Relative buckets both ways (20 source tokens, past max_distance 16), the causal decoder
    with its bias, cross-attention, RMSNorm, unscaled logits, the shared table; HF -> graphspec
    -> HF."""
    torch.manual_seed(0)
    m = graphspec.load("t5_base", SMALL_SETS + ["seq_len=20", "tgt_len=13"])
    g = m.graph
    if passes != "none":
        from graphspec.passes import run_pipeline

        g, _ = run_pipeline(g, passes, echo=lambda s: None)
    gen = emit(g, m.spec)
    net = getattr(load(gen.source), gen.class_name)().eval()
    cfg = transformers.T5Config(**hf_ref.SMALL_T5)
    hf = hf_ref.perturbed(transformers.T5Model(cfg))
    net.load_state_dict(to_graphspec(hf, g), strict=True)
    src, tgt = torch.randint(0, 100, (2, 20)), torch.randint(0, 100, (2, 13))
    with torch.no_grad():
        want = hf(input_ids=src, decoder_input_ids=tgt).last_hidden_state
        got = net(src, tgt)
        assert ((got - want).abs().max() / want.abs().max()).item() < 1e-5
        back = from_graphspec(net.state_dict(), g, "t5", like=hf.state_dict())
        hf2 = transformers.T5Model(cfg).eval()
        r = hf2.load_state_dict(back, strict=False)
        assert not r.unexpected_keys
        assert torch.allclose(hf2(input_ids=src, decoder_input_ids=tgt).last_hidden_state, want, atol=1e-6)


def test_t5_base_is_a_polynomial_in_source_and_target_lengths():
    import sympy

    from graphspec.lower import SYMBOLS

    B, N, T = SYMBOLS["B"], SYMBOLS["N"], SYMBOLS["T"]
    d, f = 768, 3072
    macs = graphspec.load("t5_base", symbolic=True).macs()
    # QKᵀ and ·V: 12 encoder layers 2N²d, 12 decoder layers 2T²d (self) + 2NTd (cross);
    # linears per source token: encoder q, k, v, o + MLP 4d² + 2d·f and the decoder's cross k, v
    # 2d² (they read the memory); per target token: self q, k, v, o + cross q, o 6d² + MLP 2d·f
    want = 12 * (2 * N**2 * d + 2 * T**2 * d + 2 * N * T * d + (6 * d * d + 2 * d * f) * N + (6 * d * d + 2 * d * f) * T)
    assert sympy.expand(macs - B * want) == 0
    assert macs.subs({B: 1, N: 128, T: 128}) == 26_273_120_256
