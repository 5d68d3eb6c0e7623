"""Gemma 2 (Gemma Team 2024, arXiv:2408.00118) against Hugging Face's Gemma2ForCausalLM.

The bundled spec gemma2_2b is checked to the unit against Gemma2ForCausalLM built from the
released config on the meta device (params 2,614,341,888; MACs = FlopCounterMode/2 with eager
attention at N=128, checked in tests/reference.py's formula). A small config (4 layers, sliding
window 4 < N = 12, head_dim 24 ≠ 64/4, GQA 4/2) with random, perturbed weights exercises what no
other test compares with an independent implementation: sliding and global layers alternating in
one block class (`pattern(sliding(4), causal)`: each layer takes its window as a constructor
argument, as HF's `config.layer_types[layer_idx]`), sandwich norms, rms_norm(offset=1),
attention and final logit soft-capping, GeGLU (tanh GELU), the √d embedding scale and a tied
head. HF runs eager attention; fp32; 1e-5 relative.
"""

from __future__ import annotations

import pytest
import torch

import graphspec
from graphspec.interpret import init_params
from graphspec.weights import from_graphspec, to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402

meta, n_params, rel_err, interpreted = hf_ref.meta, hf_ref.n_params, hf_ref.rel_err, hf_ref.interpreted

# Gemma 2 2B as released (Table 1 of the paper; HF's config): query_pre_attn_scalar 256 = head_dim
GEMMA2_2B = dict(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                 num_attention_heads=8, num_key_value_heads=4, head_dim=256, sliding_window=4096,
                 query_pre_attn_scalar=256, attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=24, sliding_window=4, query_pre_attn_scalar=24,
             attn_logit_softcapping=0.05, final_logit_softcapping=0.2)  # caps the small logits really feel
SMALL_SET = ["vocab=120", "d=64", "d_ff=96", "L=4", "h=4", "kv=2", "hd=24", "window=4", "cap=0.05", "final_cap=0.2",
             "seq_len=12", "batch=2"]
RTOL = 1e-5


def config(**kw):
    return transformers.Gemma2Config(**{**GEMMA2_2B, **kw}, attn_implementation="eager")


def hf_small():
    return hf_ref.random_hf(transformers.Gemma2ForCausalLM, config(**SMALL))


def test_gemma2_2b_params_equal_hugging_face_on_meta():
    m = graphspec.load("gemma2_2b")
    want = n_params(meta(transformers.Gemma2ForCausalLM, config()))
    assert want == 2_614_341_888 == m.params() == m.spec.expect["params"]
    # 26·(2304·(2048 + 2·1024) + 2048·2304 + 3·2304·9216 + 4·2304 norms) + 2304 + 256000·2304 (tied)
    assert want == 26 * (2304 * 4096 + 2048 * 2304 + 3 * 2304 * 9216 + 4 * 2304) + 2304 + 256000 * 2304


def test_macs_equal_flop_counter_on_two_layers():
    """FlopCounterMode/2 on Gemma2ForCausalLM (eager) at N = 12 with 2 layers on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    m = graphspec.load("gemma2_2b", ["L=2", "seq_len=12"])
    with torch.device("meta"):
        hf = transformers.Gemma2ForCausalLM(config(num_hidden_layers=2)).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            hf(input_ids=torch.zeros(1, 12, dtype=torch.long))
    assert fc.get_total_flops() // 2 == m.macs()


def generated(passes: str):
    return hf_ref.generated(graphspec.load("gemma2_2b", SMALL_SET), passes)


@pytest.mark.parametrize("passes", ["none", "default"])
def test_generated_module_matches_gemma2(passes):
    hf = hf_small()
    assert hf.config.layer_types[:2] == ["sliding_attention", "full_attention"]
    graph, net, src = generated(passes)
    assert src.count("class Block(") == 1 and "sliding_window=4 if i % 2 == 0 else None" in src
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(2))
    assert hf_ref.hf_logits_error(hf, net, graph, ids) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "llama", hf) == []


def test_interpreter_matches_gemma2():
    hf = hf_small()
    m = graphspec.load("gemma2_2b", SMALL_SET)
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(3))
    assert hf_ref.hf_interpreter_error(hf, m.graph, ids) < RTOL


def test_every_construct_matters():
    """The comparison would catch a wrong mask pattern or a missing soft-cap: each variant of the
    spec, with the same weights, is far from HF's output."""
    hf = hf_small()
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = hf(input_ids=ids).logits
        for change in (["decoder.attention=causal"], ["decoder.attention=pattern(causal, sliding(4))"],
                       ["cap=50"], ["final_cap=30"]):
            m = graphspec.load("gemma2_2b", SMALL_SET + change)
            assert rel_err(interpreted(m.graph, ids, to_graphspec(hf, m.graph)), want) > 1e-3, change


def test_offset_norms_start_at_hugging_faces_init():
    """rms_norm(offset=1) weights start at 0, as Gemma2RMSNorm's, so that (1 + w) = 1 — built
    directly, and on the meta device then `to_empty` + `init_weights()`."""
    torch.manual_seed(0)
    hf = transformers.Gemma2ForCausalLM(config(**SMALL))
    want = {k.removeprefix("model."): v for k, v in hf.state_dict().items() if "norm" in k}
    assert want and all(torch.equal(v, torch.zeros_like(v)) for v in want.values())
    _, net, src = generated("none")
    assert "class OffsetRMSNorm(nn.RMSNorm)" in src and "self.input_layernorm(x)" in src
    with torch.device("meta"):
        lazy = type(net)()
    lazy.to_empty(device="cpu")
    lazy.init_weights()
    for model in (net, lazy):
        got = {k: v for k, v in model.state_dict().items() if "norm" in k}
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_interpreter_draw_agrees_with_generated_module_and_hugging_face():
    """init_params draws each rms_norm(offset=1) scale w around the generated module's init, 0
    (HF's too), as it draws an nn.RMSNorm's around 1: (offset + w) ≈ 1 either way (it drew
    1 + N(0, 0.1²) before, a scale of 2). With one seed's draw, the interpreter, the generated
    module and Gemma2ForCausalLM agree. Gemma 2's own caps (50, 30): at this draw's scale the
    small test caps saturate (every logit ±0.2)."""
    llama = graphspec.load("llama2_7b", ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8"])
    gemma = graphspec.load("gemma2_2b", SMALL_SET + ["cap=50", "final_cap=30"])
    for m, n_norms in ((llama, 2 * 2 + 1), (gemma, 4 * 4 + 1)):
        params = init_params(m.graph, seed=0)
        graph, net, _ = hf_ref.generated(m)
        norms = {k: v for k, v in net.state_dict().items() if "norm" in k}
        assert len(norms) == n_norms
        for k, init in norms.items():  # 0.1·N(0, 1) over 64 entries: |mean| < 0.03, max < 0.37 here
            assert (params[k] - init).mean().abs() < 0.1 and (params[k] - init).abs().max() < 0.5, k
    net.load_state_dict(params, strict=True)  # gemma's
    hf = transformers.Gemma2ForCausalLM(config(**{**SMALL, "attn_logit_softcapping": 50.0,
                                                  "final_logit_softcapping": 30.0})).eval()
    hf.load_state_dict(from_graphspec(params, graph, "llama", like=hf.state_dict()), strict=True)
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        want = hf(input_ids=ids).logits
        assert want.abs().max() > 1  # not squashed by the cap
        assert rel_err(interpreted(graph, ids, params), want) < RTOL
        assert rel_err(net(ids), want) < RTOL


@pytest.mark.parametrize("passes", ["none", "default"])
def test_onnx_matches_gemma2(passes):
    """onnxruntime runs the exported graph (sliding and global layers, both soft-caps, sandwich
    (1 + w) norms) with HF's weights and matches HF's logits (1e-4)."""
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    hf = hf_small()
    graph = hf_ref.pipeline(graphspec.load("gemma2_2b", SMALL_SET).graph, passes)
    params = {k: v.numpy() for k, v in to_graphspec(hf, graph).items()}
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(5))
    (got,) = gx.run(gx.export(graph, params), {graph.inputs[0].name: ids.numpy()})
    with torch.no_grad():
        want = hf(input_ids=ids).logits
    assert rel_err(torch.from_numpy(got), want) < 1e-4


def test_fx_module_matches_gemma2():
    """graphspec.codegen.fx (one fx node per IR node) with HF's weights: the tied head reads
    `embed_tokens.weight` (it called the embedding on the hidden states before)."""
    from graphspec.codegen.fx import to_fx

    hf = hf_small()
    m = graphspec.load("gemma2_2b", SMALL_SET)
    gm = to_fx(m.graph)
    gm.load_state_dict(to_graphspec(hf, m.graph), strict=True)
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert rel_err(gm(ids), hf(input_ids=ids).logits) < RTOL


def test_tvm_llvm_matches_gemma2():
    """TVM Relax built for llvm (untuned) with HF's weights matches HF's logits (1e-4)."""
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    hf = hf_small()
    graph = hf_ref.pipeline(graphspec.load("gemma2_2b", SMALL_SET).graph, "default")
    params = {k: v.numpy() for k, v in to_graphspec(hf, graph).items()}
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(7))
    low = gt.lower(graph)
    ex, _ = gt.build(low, "llvm")
    (got,) = gt.Runner(ex, low.params, params)(ids.numpy())
    with torch.no_grad():
        assert rel_err(torch.from_numpy(got), hf(input_ids=ids).logits) < 1e-4
