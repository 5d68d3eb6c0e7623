"""Rescaled RoPE (Llama 3.1/3.2, position interpolation, YaRN) and per-layer position schemes
(Gemma 3) against Hugging Face's implementations, built from Config objects with random weights.

- The bundled llama3_1_8b, llama3_2_1b, gemma3_1b and gemma3_27b have the parameters of LlamaForCausalLM /
  Gemma3ForCausalLM built from the released configs on the meta device, to the unit, and their
  MACs are FlopCounterMode/2 (eager attention) at N=128 on the meta device.
- Small configs: every rope_type graphspec writes (llama3, linear, yarn with its options) changes
  the logits (so the comparison sees the scaling), and graphspec's generated module and IR
  interpreter give HF's logits (fp32, 1e-5 relative), with HF's weights mapped in strictly.
- Gemma 3: five sliding layers with their own rope(10000) for one global layer with rope(1e6)
  rescaled linear(8) (Gemma-3 4B's), QK-norm, sandwich norms: generated module, torch.fx module
  and interpreter = Gemma3ForCausalLM; each construct matters (a variant with the global base on
  every layer, or without the scaling, is far off).
"""

from __future__ import annotations

import pytest
import torch

import graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)

RTOL = 1e-5

LLAMA31_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, rms_norm_eps=1e-5, max_position_embeddings=131072,
                  tie_word_embeddings=False,
                  rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                       high_freq_factor=4.0, original_max_position_embeddings=8192))
LLAMA32_1B = dict(LLAMA31_8B, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, head_dim=64,
                  tie_word_embeddings=True, rope_parameters=dict(LLAMA31_8B["rope_parameters"], factor=32.0))
GEMMA3_1B = dict(vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                 num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                 query_pre_attn_scalar=256, max_position_embeddings=32768)
GEMMA3_27B = dict(vocab_size=262208, hidden_size=5376, intermediate_size=21504, num_hidden_layers=62,
                  num_attention_heads=32, num_key_value_heads=16, head_dim=128, sliding_window=1024,
                  query_pre_attn_scalar=168, max_position_embeddings=131072,
                  rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                   "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
BUNDLED = {"llama3_1_8b": ("LlamaForCausalLM", "LlamaConfig", LLAMA31_8B, 8_030_261_248),
           "gemma3_27b": ("Gemma3ForCausalLM", "Gemma3TextConfig", GEMMA3_27B, 27_009_346_304),
           "llama3_2_1b": ("LlamaForCausalLM", "LlamaConfig", LLAMA32_1B, 1_235_814_400),
           "gemma3_1b": ("Gemma3ForCausalLM", "Gemma3TextConfig", GEMMA3_1B, 999_885_952)}


def _meta_counts(cls: str, cfg_cls: str, kw: dict, N: int = 128):
    from torch.utils.flop_counter import FlopCounterMode

    cfg = getattr(transformers, cfg_cls)(**kw, attn_implementation="eager")
    with torch.device("meta"):
        hf = getattr(transformers, cls)(cfg).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            hf(input_ids=torch.zeros(1, N, dtype=torch.long))
    return hf_ref.n_params(hf), fc.get_total_flops() // 2


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_counts_equal_hugging_face_on_meta(name):
    cls, cfg_cls, kw, published = BUNDLED[name]
    m = graphspec.load(name)
    params, macs = _meta_counts(cls, cfg_cls, {**kw, "num_hidden_layers": 2})  # MACs: 2 layers at N=128
    assert graphspec.load(name, ["L=2"]).macs() == macs
    full = hf_ref.n_params(hf_ref.meta(getattr(transformers, cls), getattr(transformers, cfg_cls)(**kw)))
    assert full == published == m.params() == m.spec.expect["params"]
    assert m.macs() == m.spec.expect["macs"]


# -- small Llama with each rope_type -------------------------------------------------------------
SMALL_LLAMA = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False)
LLAMA_SET = ["vocab=128", "d=64", "d_ff=96", "L=2", "h=4", "kv=2", "seq_len=16", "batch=2"]
# graphspec's scaling -> HF's rope_parameters (theta 10000: the small head's 8 frequencies span the
# ramps of every rule at an original context of 8..16 tokens)
SCALINGS = {
    "llama3": ("llama3(8, low=1, high=4, original=8)",
               dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position_embeddings=8)),
    "linear": ("linear(4)", dict(rope_type="linear", factor=4.0)),
    "yarn": ("yarn(4, original=16)", dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=16)),
    "yarn_options": ("yarn(4, original=16, beta_fast=8, beta_slow=2, mscale=0.707, mscale_all_dim=1, truncate=false)",
                     dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=16, beta_fast=8.0,
                          beta_slow=2.0, mscale=0.707, mscale_all_dim=1.0, truncate=False)),
    "yarn_factor": ("yarn(2, original=16, attention_factor=1.3)",
                    dict(rope_type="yarn", factor=2.0, original_max_position_embeddings=16, attention_factor=1.3)),
}


def _llama(scaling: str | None):
    pos = "rope(10000)" if scaling is None else f"rope(10000, scaling={SCALINGS[scaling][0]})"
    return graphspec.load("llama3_1_8b", [*LLAMA_SET, f"embed=tokens(vocab, dim=d, pos={pos})"])


def _hf_llama(scaling: str | None):
    rp = {"rope_type": "default"} if scaling is None else dict(SCALINGS[scaling][1])
    cfg = transformers.LlamaConfig(**SMALL_LLAMA, rope_parameters={"rope_theta": 10000.0, **rp},
                                   attn_implementation="eager")
    return hf_ref.random_hf(transformers.LlamaForCausalLM, cfg)


@pytest.mark.parametrize("scaling", sorted(SCALINGS))
def test_generated_module_and_interpreter_match_llama_rope_types(scaling):
    hf = _hf_llama(scaling)
    m = _llama(scaling)
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    for passes in ("none", "default"):
        graph, net, src = hf_ref.generated(m, passes)
        assert "def rope_frequencies(" in src and "scaling=(" in src
        assert hf_ref.hf_logits_error(hf, net, graph, ids) < RTOL, passes
    assert hf_ref.hf_interpreter_error(hf, m.graph, ids) < RTOL
    # the scaling matters: the same weights without it are far from HF's logits
    plain = _llama(None)
    with torch.no_grad():
        got = hf_ref.interpreted(plain.graph, ids, hf_ref.to_graphspec(hf, plain.graph))
        assert hf_ref.rel_err(got, hf(input_ids=ids).logits) > 1e-3


def test_unscaled_rope_files_are_unchanged():
    """A spec without scaling writes today's apply_rotary, with no rope_frequencies helper."""
    _, _, src = hf_ref.generated(_llama(None))
    assert "rope_frequencies" not in src and "scaling" not in src
    assert "def apply_rotary(x, theta: float, rotary_dim: int, interleaved: bool = False):" in src


# -- Gemma 3: per-layer RoPE bases -------------------------------------------------------------------
GEMMA3_SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=7, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=24, sliding_window=4, query_pre_attn_scalar=24,
                    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
GEMMA3_SET = ["vocab=120", "d=64", "d_ff=96", "L=7", "h=4", "kv=2", "hd=24", "window=4", "seq_len=12", "batch=2",
              "embed=tokens(vocab, dim=d, pos=rope(1000000, scaling=linear(8)), scale=true)"]


def _hf_gemma3():
    cfg = transformers.Gemma3TextConfig(**GEMMA3_SMALL, attn_implementation="eager")
    assert cfg.layer_types == ["sliding_attention"] * 5 + ["full_attention", "sliding_attention"]
    return hf_ref.random_hf(transformers.Gemma3ForCausalLM, cfg)


@pytest.mark.parametrize("passes", ["none", "default"])
def test_generated_module_matches_gemma3(passes):
    hf = _hf_gemma3()
    graph, net, src = hf_ref.generated(graphspec.load("gemma3_1b", GEMMA3_SET), passes)
    assert src.count("class Block(") == 1 and "rope_thetas=(10000.0, 10000.0, 10000.0, 10000.0, 10000.0, 1000000.0" in src
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(1))
    assert hf_ref.hf_logits_error(hf, net, graph, ids) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "llama", hf) == []


def test_fx_module_and_interpreter_match_gemma3():
    from graphspec.codegen.fx import to_fx

    hf = _hf_gemma3()
    m = graphspec.load("gemma3_1b", GEMMA3_SET)
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(2))
    assert hf_ref.hf_interpreter_error(hf, m.graph, ids) < RTOL
    gm = to_fx(m.graph)
    gm.load_state_dict(hf_ref.to_graphspec(hf, m.graph), strict=True)
    with torch.no_grad():
        assert hf_ref.rel_err(gm(ids), hf(input_ids=ids).logits) < RTOL


def test_every_position_construct_matters():
    """With the same weights, the global base on every layer, or the global layer unscaled, is far
    from Gemma3ForCausalLM's logits."""
    hf = _hf_gemma3()
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = hf(input_ids=ids).logits
        for change in (["decoder.attention=pattern(sliding(window) * 5, causal)"],
                       ["embed=tokens(vocab, dim=d, pos=rope(1000000), scale=true)"]):
            m = graphspec.load("gemma3_1b", GEMMA3_SET + change)
            got = hf_ref.interpreted(m.graph, ids, hf_ref.to_graphspec(hf, m.graph))
            assert hf_ref.rel_err(got, want) > 1e-3, change


def test_gemma3_layers_read_like_hf_layer_types():
    """26 layers, every sixth global: one Block class whose per-layer arguments are expressions of
    the layer index (HF: `config.layer_types[layer_idx]`), not 26-entry tuples."""
    from graphspec.codegen import emit

    m = graphspec.load("gemma3_1b")
    src = emit(m.graph, m.spec).source
    for line in ("causal=i % 6 == 5,", "rope_theta=1000000.0 if i % 6 == 5 else 10000.0,",
                 "sliding_window=None if i % 6 == 5 else 512,", "for i in range(26)"):
        assert line in src, line
    assert max(len(ln) for ln in src.splitlines()) <= 100
