"""specs/glm4_5_air.yaml and the `glm4_moe` family through Hugging Face configs
(graphspec/interchange/hf_olmo3_glm.py), against transformers 5's Glm4MoeForCausalLM: GQA with q/k/v
biases and a head_dim of its own, RoPE on half of each head's dims, an optional per-head q/k norm,
and DeepSeek-V3's mixture (sigmoid router with the correction bias and groups, shared experts)
after first_k_dense_replace dense layers.

The bundled spec's parameters and active parameters equal Glm4MoeForCausalLM's on the meta device
(GLM-4.5-Air 106,852,245,504 / 13,424,123,904; GLM-4.5 by --set: 352,797,814,784 / 33,632,251,904),
its MACs FlopCounterMode / 2 (eager): the attention, dense MLPs and head at full size on meta
(every layer dense), the mixture on a small real model (routing needs values), and the formula
beside `expect:`. At a small size (random weights, every parameter and the correction bias
perturbed) the bundled spec's generated module, the interpreter and torch.fx compute HF's logits
to 1e-5, and the same spec rotating every dim, or without the correction bias, does not. The
published config imports to the bundled spec node for node; export --weights loads in
transformers with every tensor; configs graphspec cannot express exit 2 naming the option."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

transformers = pytest.importorskip("transformers")
import reference_hf as ref  # noqa: E402  (tests/, on pytest's pythonpath)
from graphspec.cli.main import main  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import graphspec  # noqa: E402
from graphspec.interchange import from_hf_config  # noqa: E402

RTOL = 1e-5
# zai-org/GLM-4.5-Air's config.json as a public ms-swift debugging log prints it (`Glm4MoeConfig {...}`,
# transformers 4.54.1: every key of the file; the repository is not shown by the code index). Not a verbatim
# copy of the hub file; a second public fixture agrees on the sizes and expert counts.
GLM45_AIR = {"architectures": ["Glm4MoeForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
             "eos_token_id": [151329, 151336, 151338], "first_k_dense_replace": 1, "head_dim": 128,
             "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 10944,
             "max_position_embeddings": 131072, "model_type": "glm4_moe", "moe_intermediate_size": 1408,
             "n_group": 1, "n_routed_experts": 128, "n_shared_experts": 1, "norm_topk_prob": True,
             "num_attention_heads": 96, "num_experts_per_tok": 8, "num_hidden_layers": 46, "num_key_value_heads": 8,
             "num_nextn_predict_layers": 1, "pad_token_id": 151329, "partial_rotary_factor": 0.5,
             "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 1000000, "routed_scaling_factor": 1.0,
             "tie_word_embeddings": False, "topk_group": 1, "torch_dtype": "bfloat16", "transformers_version": "4.54.1",
             "use_cache": True, "use_qk_norm": False, "vocab_size": 151552}
# GLM-4.5 (355B) as public fixtures give it: d 5120, 92 layers (3 dense of 12288), 160 experts of 1536, q/k norm
GLM45 = dict(GLM45_AIR, hidden_size=5120, num_hidden_layers=92, intermediate_size=12288, moe_intermediate_size=1536,
             n_routed_experts=160, first_k_dense_replace=3, routed_scaling_factor=2.5, use_qk_norm=True)
GLM45_SET = ["d=5120", "L=92", "d_ff=12288", "expert_ff=1536", "experts=160", "dense=3", "decoder.qk_norm=head",
             "decoder.mlp=first(dense, glu(d_ff, silu), moe(experts, top_k, expert=glu(expert_ff, silu), "
             "shared=shared, router=sigmoid(scale=2.5)))"]
SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, moe_intermediate_size=24, num_hidden_layers=3,
             num_attention_heads=4, num_key_value_heads=2, head_dim=24, n_routed_experts=8, num_experts_per_tok=2,
             n_shared_experts=1, first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=2.5,
             attention_bias=True, use_qk_norm=False, rms_norm_eps=1e-5, max_position_embeddings=64,
             rope_parameters={"rope_type": "default", "rope_theta": 1e6, "partial_rotary_factor": 0.5},
             pad_token_id=None, eos_token_id=None, bos_token_id=None)
SMALL_SET = ["vocab=120", "d=64", "L=3", "h=4", "kv=2", "hd=24", "d_ff=96", "expert_ff=24", "experts=8", "top_k=2",
             "seq_len=12", "batch=2"]
SMALL_ROUTER = ("router=sigmoid()", "router=sigmoid(4, 2, scale=2.5)")


def hf_model(**kw):
    """A small Glm4MoeForCausalLM, its weights and its correction bias (zero at init) perturbed."""
    hf = ref.random_hf(transformers.Glm4MoeForCausalLM,
                       transformers.Glm4MoeConfig(**{**SMALL, **kw}, attn_implementation="eager",
                                                  experts_implementation="eager"))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in hf.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.add_(0.3 * torch.randn(8, generator=g))
    return hf


def ids(n=12, seed=1):
    return torch.randint(0, 120, (2, n), generator=torch.Generator().manual_seed(seed))


def load_text(tmp_path, changes=(), overrides=SMALL_SET):
    text = (graphspec.SPECS_DIR / "glm4_5_air.yaml").read_text()
    for old, new in [SMALL_ROUTER, *changes]:
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "s.yaml").write_text(text)
    return graphspec.load(tmp_path / "s.yaml", overrides)


def hf_meta(**kw):
    cfg = transformers.Glm4MoeConfig.from_dict({**{k: v for k, v in GLM45_AIR.items() if k != "torch_dtype"}, **kw,
                                                "attn_implementation": "eager"})
    return ref.meta(transformers.Glm4MoeForCausalLM, cfg).eval()


def flop_counted_macs(model, N: int) -> int:
    x = torch.zeros(1, N, dtype=torch.long, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=x)
    return fc.get_total_flops() // 2


def test_bundled_air_params_equal_hugging_face_on_meta():
    """106,852,245,504 (paper: 106B); active: all but 120 of 128 routed experts in 45 layers
    (13.4B; 12.2B without the embedding and the head: the paper's 12B)."""
    m, hf = graphspec.load("glm4_5_air"), hf_meta()
    assert hf.model.rotary_emb.inv_freq.numel() == 32  # 64 of 128 dims rotated
    n = ref.n_params(hf)
    experts = sum(p.numel() for k, p in hf.named_parameters() if ".mlp.experts." in k)
    assert experts == 45 * 128 * 3 * 4096 * 1408
    assert m.params() == n == 106_852_245_504 == m.spec.expect["params"]
    assert m.active_params() == n - experts * 120 // 128 == 13_424_123_904 == m.spec.expect["active_params"]


def test_glm4_5_params_equal_hugging_face_on_meta():
    """GLM-4.5 from the bundled spec by --set: 352,797,814,784 parameters, 33,632,251,904 active
    (paper: 355B / 32B; the MTP layer, about 4B, is built by neither and not counted here)."""
    m, hf = graphspec.load("glm4_5_air", GLM45_SET), hf_meta(**GLM45)
    n = ref.n_params(hf)
    experts = sum(p.numel() for k, p in hf.named_parameters() if ".mlp.experts." in k)
    assert m.params() == n == 352_797_814_784
    assert m.active_params() == n - experts * 152 // 160 == 33_632_251_904


ATTN = 4096 * (12288 + 2 * 1024) + 12288 * 4096  # q, k, v (8 kv heads of 128), o


def test_bundled_air_attention_and_dense_macs_equal_flop_counter_on_meta():
    """Full size at N = 128 with every layer dense: the projections, QKᵀ and ·V over 96 heads of
    128, the dense SwiGLU and the head."""
    dense = graphspec.load("glm4_5_air", ["dense=46"])
    want = 128 * (46 * (ATTN + 3 * 4096 * 10944) + 4096 * 151552) + 46 * 2 * 128**2 * 12288
    assert dense.macs() == flop_counted_macs(hf_meta(first_k_dense_replace=46), 128) == want


def test_bundled_air_moe_macs_equal_flop_counter_and_the_bundled_figure(tmp_path):
    """The bundled spec at a small size on a real Glm4MoeForCausalLM (each token in exactly top_k
    experts), then the bundled figure: 1,657,219,842,048 at N = 128."""
    hf, m = hf_model(), load_text(tmp_path, overrides=[*SMALL_SET, "batch=1"])
    assert m.params() == ref.n_params(hf)
    attn = 64 * (96 + 2 * 48) + 96 * 64
    moe = 64 * 8 + 2 * 3 * 64 * 24 + 3 * 64 * 24  # router, 2 of 8 experts, 1 shared
    assert m.macs() == flop_counted_macs(hf, 12) == 12 * (3 * attn + 3 * 64 * 96 + 2 * moe + 64 * 120) \
        + 3 * 2 * 12**2 * 96
    full = graphspec.load("glm4_5_air")
    moe = 4096 * 128 + 8 * 3 * 4096 * 1408 + 3 * 4096 * 1408
    want = 128 * (46 * ATTN + 3 * 4096 * 10944 + 45 * moe + 4096 * 151552) + 46 * 2 * 128**2 * 12288
    assert full.macs() == want == 1_657_219_842_048 == full.spec.expect["macs"]


CASES = {"air": ({}, ()), "qk-norm": (dict(use_qk_norm=True), (("bias: false\n", "bias: false\n  qk_norm: head\n"),))}


@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bundled_spec_computes_glm_logits(tmp_path, case, passes):
    """The bundled spec at a small size (a dense layer, then 2 of 8 experts from 2 of 4 groups,
    ×2.5, a shared expert) = Glm4MoeForCausalLM's logits with its weights, strictly; mapped back,
    HF's own tensors (the correction bias among them) bit for bit."""
    kw, changes = CASES[case]
    hf = hf_model(**kw)
    graph, net, _ = ref.generated(load_text(tmp_path, changes), passes)
    assert ref.hf_logits_error(hf, net, graph, ids()) < RTOL
    assert ref.round_trip_mismatches(net, graph, "llama", hf) == []
    assert ref.hf_interpreter_error(hf, graph, ids()) < RTOL


def test_torch_fx_computes_glm_logits(tmp_path):
    from graphspec.codegen.fx import to_fx

    from graphspec.passes import run_pipeline
    from graphspec.weights import to_graphspec

    hf, m = hf_model(), load_text(tmp_path)
    for g in (m.graph, run_pipeline(m.graph, "default", echo=lambda s: None)[0]):
        gm, state = to_fx(g).eval(), to_graphspec(hf, g)
        assert sum(k.endswith("e_score_correction_bias") for k in state) == 2  # state, loaded with the weights
        gm.load_state_dict(state, strict=True)
        with torch.no_grad():
            assert ref.rel_err(gm(ids()), hf(input_ids=ids()).logits) < RTOL


@pytest.mark.parametrize("change", [("fraction=0.5, ", ""), ("sigmoid(4, 2, scale=2.5)", "sigmoid(4, 2, scale=2.5, bias=false)")],
                         ids=["every-dim-rotated", "no-correction-bias"])
def test_each_feature_is_seen(tmp_path, change):
    """RoPE on every dim instead of half, or the router without e_score_correction_bias: > 1e-3 off
    (the bias model then has no buffer to load: HF's is dropped from its state dict)."""
    hf = hf_model()
    graph, net, _ = ref.generated(load_text(tmp_path, [change]))
    from graphspec.weights import to_graphspec

    state = to_graphspec(hf, graph)
    state = {k: v for k, v in state.items() if k in net.state_dict()}
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert ref.rel_err(net(ids()), hf(input_ids=ids()).logits) > 1e-3


def imported(tmp_path, cfg):
    path = tmp_path / "config.json"
    if isinstance(cfg, dict):
        path.write_text(json.dumps(cfg, indent=2))
    else:
        cfg.to_json_file(str(path))
    text = from_hf_config(json.loads(path.read_text()), file=str(path), text=path.read_text())
    (tmp_path / "imported.yaml").write_text(text)
    return graphspec.load(tmp_path / "imported.yaml"), text


def ir_lines(m) -> list[str]:
    return [ln.split("  #")[0] for ln in str(m.graph).splitlines()[1:]]


def test_published_config_imports_to_the_bundled_spec(tmp_path):
    """GLM-4.5-Air's config (legacy rope_theta, partial_rotary_factor) -> the bundled spec's IR
    node for node, its header naming the MTP layer left out; exported back, its keys."""
    from graphspec.interchange.hf_export import to_hf_config

    m, text = imported(tmp_path, GLM45_AIR)
    assert "num_nextn_predict_layers 1: the multi-token-prediction layer is not built" in text
    bundled = graphspec.load("glm4_5_air")
    assert ir_lines(m) == ir_lines(bundled) and m.params() == bundled.params()
    out = to_hf_config(bundled)
    assert out["model_type"] == "glm4_moe" and out["rope_parameters"] == {
        "rope_theta": 1e6, "rope_type": "default", "partial_rotary_factor": 0.5}
    shared = {k for k in GLM45_AIR if k in out}
    assert len(shared) >= 25 and {k: GLM45_AIR[k] for k in shared} == {k: out[k] for k in shared}


def test_imported_small_config_computes_glm_logits(tmp_path):
    """A small config written by to_json_file: 2 dense layers, 4 groups top 2 not renormalised,
    q/k norm, no shared expert, no biases."""
    kw = dict(num_hidden_layers=4, first_k_dense_replace=2, norm_topk_prob=False, n_shared_experts=0,
              use_qk_norm=True, attention_bias=False)
    hf = hf_model(**kw)
    m, text = imported(tmp_path, hf.config)
    assert "normalize=false" in text and "qk_norm: head" in text, text
    assert m.params() == ref.n_params(hf)
    graph, net, _ = ref.generated(m, "default")
    assert ref.hf_logits_error(hf, net, graph, ids()) < RTOL


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def test_export_with_weights_loads_in_transformers(tmp_path):
    from safetensors.torch import save_file

    m = load_text(tmp_path)
    _, net, _ = ref.generated(m, "none")
    ref.perturbed(net, seed=3)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    r = cli("export", tmp_path / "s.yaml", "--format", "hf", "-o", tmp_path / "hf", "--weights",
            tmp_path / "w.safetensors", *[a for s in SMALL_SET for a in ("--set", s)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (cfg["n_group"], cfg["topk_group"], cfg["routed_scaling_factor"]) == (4, 2, 2.5)
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True,
                                                                 attn_implementation="eager")
    assert type(hf).__name__ == "Glm4MoeForCausalLM" and not info["missing_keys"] and not info["unexpected_keys"]
    assert ref.n_params(hf) == m.params()
    with torch.no_grad():
        assert ref.rel_err(net(ids()), hf.eval()(input_ids=ids()).logits) < RTOL


BAD = [  # (change to GLM-4.5-Air's config, the words the message must hold)
    ({"scoring_func": "softmax"}, "option scoring_func = \"softmax\" is not expressible"),
    ({"topk_method": "greedy"}, "option topk_method = \"greedy\""),
    ({"n_group": 3}, "option n_group = 3 / topk_group = 1 is not expressible"),
    ({"head_dim": 42}, "rotate int(0.5 × 42) = 21 dims, an odd number"),
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_type = \"dynamic\" is not expressible"),
]


@pytest.mark.parametrize("change,words", BAD, ids=[w[:30] for _, w in BAD])
def test_unexpressible_configs_exit_2_naming_the_option(tmp_path, change, words):
    text = json.dumps({**GLM45_AIR, **change}, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = cli("import", tmp_path / "config.json", "-o", tmp_path / "s.yaml")
    assert r.exit_code == 2, r.output
    key = next(iter(change))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln)
    assert f"config.json:{line}:3: error: " in r.output and words in r.output, r.output
    assert not (tmp_path / "s.yaml").exists()


def test_export_refuses_what_glm_cannot_hold(tmp_path):
    """A bias on o_proj: Glm4Moe's attention_bias is q, k and v's only."""
    r = cli("export", "glm4_5_air", "--format", "hf", "-o", tmp_path / "hf", "--set", "decoder.out_bias=true")
    assert r.exit_code == 2, r.output
    assert "Glm4Moe's attention_bias is q, k and v's" in r.output


def test_onnx_and_tvm_compute_glm_logits(tmp_path):
    """ONNX (onnxruntime; unfused and after the default passes) and TVM Relax (llvm, default passes)
    of the small bundled spec, given HF's weights (the correction bias among them): Glm4MoeForCausalLM's
    logits < 1e-4 (group-limited sigmoid routing, partial rotary, the shared expert)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    errors = ref.hf_backend_errors(hf_model(), load_text(tmp_path), ids())
    assert all(e < 1e-4 for e in errors.values()), errors
