"""gpt-oss (OpenAI 2025, arXiv:2508.10925) against Hugging Face's GptOssForCausalLM.

What is new in graphspec for it: attention sinks (`sinks: true`, one learned logit per head in
each softmax), the clamped SwiGLU expert (`clamped_swiglu(d_ff, alpha, limit)`, HF's
GptOssExperts layout with biases) and the biased top-k-softmax router (`router=topk_softmax`).
HF models are built from Config objects (random weights, no downloads): parameter counts on the
meta device (gpt-oss-20b and -120b at full size), MACs = FlopCounterMode/2 of a small eager
model, and the logits of a tiny model whose sinks, router and expert biases are perturbed
(so that each matters) against graphspec's generated module, the interpreter, torch.fx and ONNX.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from graphspec.codegen.fx import to_fx

import graphspec
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

RTOL = 1e-5
# a tiny gpt-oss: 3 layers (sliding, full, sliding) of d 48, 4 heads of 16 over 2 kv heads, 8
# experts of 40, top 2, window 4 (< N = 12, so the window acts); the published YaRN rope
SMALL = dict(vocab_size=120, hidden_size=48, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, num_local_experts=8, num_experts_per_tok=2, sliding_window=4,
             experts_implementation="eager")
SETS = ["vocab=120", "d=48", "L=3", "h=4", "kv=2", "hd=16", "experts=8", "top_k=2", "d_ff=40", "window=4", "seq_len=12"]


def gpt_oss(device="meta", **cfg):
    config = transformers.GptOssConfig(**cfg, attn_implementation="eager")
    if device == "meta":
        return hf_ref.meta(transformers.GptOssForCausalLM, config)
    hf = hf_ref.random_hf(transformers.GptOssForCausalLM, config)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # sinks and router of order 1, gates wide enough to reach the clamp at 7
        for name, p in hf.named_parameters():
            if "sinks" in name or ".router." in name:
                p.normal_(0, 1.0, generator=g)
            elif name.endswith("gate_up_proj"):
                p.normal_(0, 0.6, generator=g)
            elif name.endswith("_bias"):
                p.normal_(0, 0.3, generator=g)
    return hf


@pytest.fixture(scope="module")
def tiny():
    return gpt_oss("cpu", **SMALL), graphspec.load("gpt_oss_20b", SETS)


IDS = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(1))


def test_gpt_oss_20b_and_120b_counts_are_hugging_faces():
    """20,914,757,184 parameters (card: 20.9B) and 116,829,156,672 for 120b (card: 116.8B). The
    card's active counts (3.6B, 5.1B) leave out the token embedding (579,133,440): graphspec's
    active_params less it is 3,608,307,264 and 5,132,849,472."""
    for layers, experts, sets, card_active in ((24, 32, [], 3.6e9), (36, 128, ["L=36", "experts=128"], 5.1e9)):
        hf = gpt_oss(num_hidden_layers=layers, num_local_experts=experts)
        total = hf_ref.n_params(hf)
        routed = sum(p.numel() for n, p in hf.named_parameters() if ".experts." in n)
        assert routed == layers * experts * (3 * 2880**2 + 3 * 2880)  # gate_up, down and their biases
        m = graphspec.load("gpt_oss_20b", sets)
        assert m.params() == total
        assert m.active_params() == total - routed * (experts - 4) // experts
        assert round(m.active_params() - hf.model.embed_tokens.weight.numel(), -8) == card_active
    m = graphspec.load("gpt_oss_20b")
    assert m.params() == 20_914_757_184 == m.spec.expect["params"]
    assert m.active_params() == 4_187_440_704 == m.spec.expect["active_params"]
    assert graphspec.load("gpt_oss_20b", ["L=36", "experts=128"]).params() == 116_829_156_672


def test_macs_are_flop_counter_halves(tiny):
    """FlopCounterMode (eager) sees the q/k/v/o linears, the router, each token's top-2 experts,
    QKᵀ and ·V, the head; the sink's concat and softmax and every bias add are not MACs."""
    hf, m = tiny
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        hf(input_ids=IDS[:1])
    # per token: 3 · (q, k, v, o 48·(64 + 32 + 32 + 64) + router 48·8 + 2 experts · 3·48·40) + head 48·120
    per_token = 3 * (48 * 192 + 48 * 8 + 2 * 3 * 48 * 40) + 48 * 120
    assert m.macs() == fc.get_total_flops() // 2 == 12 * per_token + 3 * 2 * 4 * 12**2 * 16
    full = graphspec.load("gpt_oss_20b")
    per_token = 24 * (2880 * 9216 + 2880 * 32 + 4 * 3 * 2880**2) + 2880 * 201088
    assert full.macs() == 128 * per_token + 24 * 2 * 64 * 128**2 * 64 == full.spec.expect["macs"]


def test_unmasked_convention_counts_the_pairs_each_layer_keeps():
    """`unmasked` scales QKᵀ and ·V (its probabilities come through sink_softmax) by the pairs kept:
    N(N+1)/2 in the 12 full layers, W(W+1)/2 + (N−W)·W in the 12 sliding ones (W = 128, N = 512)."""
    N, W = 512, 128
    m = graphspec.load("gpt_oss_20b", [f"seq_len={N}"])
    per_pair = 2 * 64 * 64  # QKᵀ and ·V, 64 heads of 64
    kept = 12 * N * (N + 1) // 2 + 12 * (W * (W + 1) // 2 + (N - W) * W)
    assert m.macs() - m.macs("unmasked") == per_pair * (24 * N * N - kept)
    from graphspec import analysis
    from graphspec.analysis import Convention

    graph = hf_ref.pipeline(m.graph, "default")  # fused with its sinks: the same counts
    fused = [n for n in graph if n.op == "attention"]
    assert len(fused) == 24 and all(n.a["has_sinks"] for n in fused) and "sink_softmax" not in {n.op for n in graph}
    assert analysis.macs(graph, Convention.named("unmasked")) == m.macs("unmasked")
    assert analysis.macs(graph) == m.macs()


@pytest.mark.parametrize("passes", ["none", "default"])
def test_generated_module_interpreter_and_fx_match_hugging_face(tiny, passes):
    hf, m = tiny
    graph, net, src = hf_ref.generated(m, passes)
    core = {"none": "softmax_with_sinks(attn, self.sinks)",  # unfused; fused, the sink as one more key of SDPA:
            "default": "x = attention_with_sinks(\n            q_rot,\n            k_rot,\n            v,\n            sinks,"}
    assert core[passes] in src and "self.sinks = nn.Parameter" in src
    assert "clamped_swiglu(gate, up, self.alpha, self.limit)" in src
    assert "self.router = SoftmaxTopKRouter(dim, experts, top_k)" in src
    assert hf_ref.hf_logits_error(hf, net, graph, IDS, "llama") < RTOL  # strict load of HF's names
    assert hf_ref.round_trip_mismatches(net, graph, "llama", hf) == []
    params = to_graphspec(hf, graph, "llama")
    gm = to_fx(graph)
    gm.load_state_dict(params, strict=True)
    with torch.no_grad():
        want = hf(input_ids=IDS[:1]).logits
        assert hf_ref.rel_err(gm(IDS[:1]), want) < RTOL
        assert hf_ref.rel_err(hf_ref.interpreted(graph, IDS[:1], params), want) < RTOL


def test_sinks_biases_window_and_clamp_each_matter(tiny):
    """The comparison above must exercise them: with the sinks, the router's or the experts'
    biases zeroed, the window widened or the clamp lifted, the logits move away from HF's."""
    hf, m = tiny
    graph, net, _ = hf_ref.generated(m)
    net.load_state_dict(to_graphspec(hf, graph, "llama"), strict=True)
    with torch.no_grad():
        want = hf(input_ids=IDS).logits
        assert hf_ref.rel_err(net(IDS), want) < RTOL
        for suffix in ("sinks", "router.bias", "gate_up_proj_bias", "down_proj_bias"):
            state = {k: (torch.zeros_like(v) if k.endswith(suffix) else v) for k, v in net.state_dict().items()}
            other = hf_ref.generated(m)[1]
            other.load_state_dict(state, strict=True)
            assert hf_ref.rel_err(other(IDS), want) > 1e-3, suffix
        for sets in (["window=12"], ["limit=100"]):
            g2, n2, _ = hf_ref.generated(graphspec.load("gpt_oss_20b", SETS + sets))
            n2.load_state_dict(to_graphspec(hf, g2, "llama"), strict=True)
            assert hf_ref.rel_err(n2(IDS), want) > 1e-3, sets


def test_a_router_without_bias_is_hugging_faces_with_that_bias_zero(tiny):
    """router=topk_softmax(bias=false): the generated SoftmaxTopKRouter has no bias (the module's
    parameters are the spec's count, HF's less 3 layers × 8 experts) and computes the logits of
    HF's model with its router biases zeroed; HF's own biases (order 1) are far off."""
    import copy

    hf, _ = tiny
    moe = "moe(experts, top_k, expert=clamped_swiglu(d_ff, alpha=alpha, limit=limit), router=topk_softmax(bias=false))"
    m = graphspec.load("gpt_oss_20b", SETS + [f"decoder.mlp={moe}"])
    graph, net, src = hf_ref.generated(m)
    assert "self.router = SoftmaxTopKRouter(dim, experts, top_k, bias=False)" in src
    assert sum(p.numel() for p in net.parameters()) == m.params() == hf_ref.n_params(hf) - 3 * 8
    zeroed = copy.deepcopy(hf)
    with torch.no_grad():
        for name, p in zeroed.named_parameters():
            if name.endswith("router.bias"):
                p.zero_()
    assert hf_ref.hf_logits_error(zeroed, net, graph, IDS, "llama") < RTOL  # strict load
    assert hf_ref.hf_logits_error(hf, net, graph, IDS, "llama") > 1e-3


def test_sliding_window_sees_window_keys_as_hugging_face():
    """HF's sliding_window=W (sliding_window_overlay: q - W < k ≤ q) is graphspec's sliding(W):
    the attention weights of a sliding layer are zero exactly outside i-W < j ≤ i."""
    hf = gpt_oss("cpu", **SMALL)
    with torch.no_grad():
        out = hf(input_ids=IDS[:1], output_attentions=True)
    probs = out.attentions[0][0, 0]  # layer 0 (sliding), head 0: N, N
    i, j = torch.arange(12).unsqueeze(1), torch.arange(12)
    keep = (j <= i) & (j > i - 4)
    assert bool((probs[~keep] == 0).all()) and bool((probs[keep] > 0).all())
    assert float(probs.sum(-1).max()) < 1.0  # the sink takes a share of every row


def test_onnx_matches_hugging_face(tiny):
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    hf, m = tiny
    for passes in ("none", "default"):
        graph = hf_ref.pipeline(m.graph, passes)
        arrays = {k: v.numpy() for k, v in to_graphspec(hf, graph, "llama").items()}
        (got,) = gx.run(gx.export(graph, arrays), {graph.inputs[0].name: IDS[:1].numpy()})
        with torch.no_grad():
            assert hf_ref.rel_err(torch.from_numpy(got), hf(input_ids=IDS[:1]).logits) < 1e-4


def test_tvm_llvm_matches_hugging_face(tiny):
    """TVM Relax (llvm): sink_softmax as concat/softmax/strided_slice, the experts in HF's layout run
    densely and weighted by the routing (zero outside each token's top_k)."""
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    hf, m = tiny
    graph = hf_ref.pipeline(m.graph, "default")
    arrays = {k: v.numpy() for k, v in to_graphspec(hf, graph, "llama").items()}
    low = gt.lower(graph)
    (got,) = gt.Runner(gt.build(low, "llvm")[0], low.params, arrays)(IDS[:1].numpy())
    with torch.no_grad():
        assert hf_ref.rel_err(torch.from_numpy(got), hf(input_ids=IDS[:1]).logits) < 1e-4


@pytest.mark.parametrize("text, message", [
    ("clamped_swiglu(64, limit=-1)", "clamped_swiglu() argument `limit` must be > 0, got -1"),
    ("clamped_swiglu(64, alpha=0)", "clamped_swiglu() argument `alpha` must be > 0, got 0"),
    ("clamped_swiglu(64, beta=1)", "clamped_swiglu() has no argument 'beta'"),
])
def test_bad_expert_arguments_are_located_errors(tmp_path, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: tokens(8)\nembed: tokens(100, dim=32, pos=rope(10000))\ndecoder×1:\n  dim: 32\n"
                    f"  heads: 4\n  sinks: true\n  mlp: moe(4, 2, expert={text}, router=topk_softmax)\n")
    r = CliRunner().invoke(main, ["flops", str(spec)])
    assert r.exit_code == 2, r.output
    assert f"{spec}:7:8: error: {message}" in r.output
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("field, message", [
    ("  sinks: 3\n  mlp: moe(4, 2, expert=clamped_swiglu(64))", "sinks"),
    ("  mlp: moe(4, 2, expert=clamped_swiglu(64), router=topk_softmax, normalize=false)",
     "topk_softmax's weights are a softmax over the top_k"),
    ("  mlp: moe(4, 2, expert=clamped_swiglu(64), router=topk_softmax(bias=2))", "topk_softmax() argument `bias`"),
])
def test_bad_sinks_and_router_are_located_errors(tmp_path, field, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"input: tokens(8)\nembed: tokens(100, dim=32)\ndecoder×1:\n  dim: 32\n  heads: 4\n{field}\n")
    r = CliRunner().invoke(main, ["flops", str(spec)])
    assert r.exit_code == 2, r.output
    assert f"{spec}:6:" in r.output and message in r.output and "fix:" in r.output


# -- interchange: graphspec import / export --format hf ----------------------------------------
# openai/gpt-oss-20b's config.json, as the public copy in decoderesearch/circuit-tracer
# tests/test_attributions_gpt_oss_nnsight.py @a53d347 (`gpt_oss_config`) holds it (its
# `_name_or_path` a leftover of that test, left out); the gpt-oss-120b copy in the mxfp4 test
# quoted by the code index differs only in num_hidden_layers 36 and num_local_experts 128.
PUBLISHED_20B = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0, "eos_token_id": 200002,
    "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "initial_context_length": 4096,
    "initializer_range": 0.02, "intermediate_size": 2880, "layer_types": ["sliding_attention", "full_attention"] * 12,
    "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4,
    "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": False,
    "pad_token_id": 199999,
    "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                       "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                     "rope_type": "yarn", "truncate": False},
    "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
    "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0", "use_cache": True, "vocab_size": 201088}


def ir(graph) -> list[str]:
    return [ln.split("  #")[0] for ln in str(graph).splitlines()[1:]]


def imported(tmp_path, cfg: dict, *sets: str):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg, indent=2))
    r = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "imported.yaml")])
    assert r.exit_code == 0, r.output
    return graphspec.load(tmp_path / "imported.yaml", list(sets))


def test_published_config_imports_to_the_bundled_spec(tmp_path):
    m = imported(tmp_path, PUBLISHED_20B)
    bundled = graphspec.load("gpt_oss_20b")
    assert ir(m.graph) == ir(bundled.graph)
    assert m.params() == 20_914_757_184 == bundled.spec.expect["params"]
    hf = gpt_oss(**{k: v for k, v in PUBLISHED_20B.items() if k not in ("quantization_config", "rope_scaling",
                                                                         "rope_theta")})
    assert hf_ref.n_params(hf) == m.params()


def test_default_config_imports_as_gpt_oss_120b(tmp_path):
    """GptOssConfig's defaults are gpt-oss-120b (36 layers, 128 experts): the model_type alone
    imports to it, and its defaults table agrees with the class's."""
    from graphspec.interchange.defaults import DEFAULTS

    hf_cfg = transformers.GptOssConfig()
    for k, v in DEFAULTS["gpt_oss"].items():
        got = getattr(hf_cfg, k)
        assert got == v or (k == "layer_types" and got == ["sliding_attention", "full_attention"] * 18), k
    m = imported(tmp_path, {"model_type": "gpt_oss"})
    assert ir(m.graph) == ir(graphspec.load("gpt_oss_20b", ["L=36", "experts=128"]).graph)
    assert m.params() == 116_829_156_672


def test_imported_small_config_is_hugging_faces_model(tmp_path):
    """A small config with attention_bias false, a tied head and its own layer_types, imported:
    the generated module loads HF's weights strictly and computes its logits."""
    cfg = transformers.GptOssConfig(**{**SMALL, "attention_bias": False, "tie_word_embeddings": True,
                                       "layer_types": ["full_attention", "sliding_attention", "sliding_attention"],
                                       "swiglu_limit": 5.0, "swiglu_alpha": 1.5})
    d = cfg.to_dict()
    m = imported(tmp_path, {k: v for k, v in d.items() if k not in ("experts_implementation",)}, "seq_len=12")
    hf = gpt_oss("cpu", **{**SMALL, "attention_bias": False, "tie_word_embeddings": True,
                           "layer_types": ["full_attention", "sliding_attention", "sliding_attention"],
                           "swiglu_limit": 5.0, "swiglu_alpha": 1.5})
    graph, net, _ = hf_ref.generated(m)
    assert m.params() == hf_ref.n_params(hf)
    assert hf_ref.hf_logits_error(hf, net, graph, IDS) < RTOL  # family found from model_type: gpt_oss -> llama


def test_export_loads_in_transformers_and_imports_back(tmp_path):
    r = CliRunner().invoke(main, ["export", "gpt_oss_20b", "--format", "hf", "-o", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.output
    cfg = transformers.AutoConfig.from_pretrained(tmp_path / "hf")
    assert cfg.model_type == "gpt_oss" and cfg.layer_types == PUBLISHED_20B["layer_types"]
    for key in ("num_local_experts", "num_experts_per_tok", "sliding_window", "swiglu_limit", "head_dim",
                "num_key_value_heads", "attention_bias", "intermediate_size", "max_position_embeddings"):
        assert getattr(cfg, key) == PUBLISHED_20B[key], key
    assert cfg.rope_parameters["factor"] == 32 and cfg.rope_parameters["truncate"] is False
    with torch.device("meta"):
        hf = transformers.GptOssForCausalLM(cfg)
    assert hf_ref.n_params(hf) == graphspec.load("gpt_oss_20b").params()


def test_export_with_weights_loads_strictly_and_computes_the_module(tmp_path):
    from safetensors.torch import save_file

    m = graphspec.load("gpt_oss_20b", SETS)
    _, net, _ = hf_ref.generated(m)
    hf_ref.perturbed(net, seed=5)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    r = CliRunner().invoke(main, ["export", "gpt_oss_20b", *sum((["--set", s] for s in SETS), []), "--format", "hf",
                                  "-o", str(tmp_path / "hf"), "--weights", str(tmp_path / "w.safetensors")])
    assert r.exit_code == 0, r.output
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "hf", output_loading_info=True, attn_implementation="eager", experts_implementation="eager")
    assert type(hf).__name__ == "GptOssForCausalLM" and not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert hf_ref.rel_err(net(IDS), hf.eval()(input_ids=IDS).logits) < RTOL


BAD_CONFIGS = [
    ({"sliding_window": None}, "option sliding_window = null"),
    ({"layer_types": ["sliding_attention", "chunked_attention"] * 12}, "option layer_types ="),
    ({"swiglu_limit": -1.0}, "swiglu_limit"),
    ({"num_experts_per_tok": 40}, "option num_experts_per_tok = 40 exceeds the 32 experts"),
    ({"num_experts": 16}, "option num_experts = 16 contradicts num_local_experts = 32"),
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_type = \"dynamic\""),
    ({"use_sinks": False}, "option use_sinks = false is not known"),
]


@pytest.mark.parametrize("change, words", BAD_CONFIGS, ids=[w[:24] for _, w in BAD_CONFIGS])
def test_unexpressible_configs_exit_2_naming_the_option(tmp_path, change, words):
    text = json.dumps({**PUBLISHED_20B, **change}, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2, r.output
    key = next(iter(change))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln)
    assert f"config.json:{line}:" in r.output and words in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "s.yaml").exists()


@pytest.mark.parametrize("sets, words", [
    (["decoder.qkv_bias=false"], "attention_bias is q, k, v and o's together"),
    (["decoder.mlp=moe(experts, top_k, expert=clamped_swiglu(d_ff))"], "router=topk_softmax"),
    (["decoder.attention=pattern(sliding(128), sliding(64))"], "causal layers and sliding ones of one window"),
])
def test_export_refuses_what_a_gpt_oss_config_cannot_hold(tmp_path, sets, words):
    r = CliRunner().invoke(main, ["export", "gpt_oss_20b", "--set", "L=2", *sum((["--set", s] for s in sets), []),
                                  "--format", "hf", "-o", str(tmp_path / "hf")])
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output


def test_save_pretrained_files_import_as_weights(tmp_path, tiny):
    """GptOssForCausalLM.save_pretrained -> graphspec import-weights (the family from config.json's
    model_type) -> the generated module loads them strictly and computes HF's logits."""
    from safetensors.torch import load_file

    hf, m = tiny
    hf.save_pretrained(tmp_path / "hf")
    r = CliRunner().invoke(main, ["import-weights", "gpt_oss_20b", str(tmp_path / "hf"), "-o",
                                  str(tmp_path / "w.safetensors"), *sum((["--set", s] for s in SETS), [])])
    assert r.exit_code == 0, r.output
    _, net, _ = hf_ref.generated(m)
    net.load_state_dict(load_file(str(tmp_path / "w.safetensors")), strict=True)
    with torch.no_grad():
        assert hf_ref.rel_err(net(IDS), hf(input_ids=IDS).logits) < RTOL


def test_fused_sinks_train_as_the_unfused_ones(tiny):
    """attention_with_sinks (the sink as an extra key, its logit through 8 more q/k dims) gives the
    unfused softmax_with_sinks' gradients: the sinks' own included."""
    from graphspec.codegen import emit, load

    from graphspec.passes import run_pipeline

    _, m = tiny
    nets = {}
    for passes in ("none", "fuse_attention"):
        g = m.graph if passes == "none" else run_pipeline(m.graph, passes)[0]
        gen = emit(g, m.spec)
        nets[passes] = getattr(load(gen.source), gen.class_name)()
    assert "attention_with_sinks(" in emit(run_pipeline(m.graph, "fuse_attention")[0], m.spec).source
    torch.manual_seed(0)
    nets["none"].layers[0].self_attn.sinks.data.normal_(0, 1.0)
    nets["fuse_attention"].load_state_dict(nets["none"].state_dict())
    grads = {}
    for passes, net in nets.items():
        net(IDS).square().mean().backward()
        grads[passes] = {k: p.grad for k, p in net.named_parameters()}
    assert grads["none"]["layers.0.self_attn.sinks"].abs().max() > 0
    for k, want in grads["none"].items():
        assert hf_ref.rel_err(grads["fuse_attention"][k], want) < 1e-4, k
