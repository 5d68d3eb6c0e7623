"""DeepSeek-V2 / V3 through Hugging Face configs (graphspec/interchange/hf_import_deepseek.py,
hf_export.py) and specs/deepseek_v3.yaml, against transformers 5's DeepseekV2 / DeepseekV3.

Small configs written by `to_json_file` import to specs whose generated module, given the HF
model's random weights (strict; e_score_correction_bias random too), computes HF's logits to
1e-5: V2-Lite's layout under YaRN, V2 with a query latent and group-limited routing, V3 with
sigmoid group routing and YaRN's mscale_all_dim, V3 rotating halves with biases and without
renormalisation. specs/deepseek_v3.yaml's parameters equal DeepseekV3ForCausalLM's from the
released config on the meta device; its MACs FlopCounterMode / 2 (eager attention), the dense
parts at full size on meta (every layer dense), the MoE layers on a small real config (routing
needs values). `graphspec export --format hf` of the bundled DeepSeek specs loads in
transformers with their parameter counts; options graphspec cannot express exit 2 naming them.
(The released-like config.json files -> bundled specs node for node, and import -> export ->
the same config: tests/test_hf_import.py, tests/test_hf_export.py through reference_hf.py.)"""

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
SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, moe_intermediate_size=24, num_hidden_layers=3,
             num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32, q_lora_rank=None, qk_nope_head_dim=16,
             qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=8, num_experts_per_tok=2, n_shared_experts=2,
             first_k_dense_replace=1, rms_norm_eps=1e-6, tie_word_embeddings=False, max_position_embeddings=64)
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
        "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707}
CASES = {
    # V2-Lite's layout: no query latent, greedy softmax top 2 of 8, not renormalised, 2 shared, YaRN
    "v2": ("DeepseekV2", dict(SMALL, topk_method="greedy", rope_parameters=YARN)),
    # DeepSeek-V2's: a query latent, 2 of 4 groups by their best expert, weights scaled by 16
    "v2-groups": ("DeepseekV2", dict(SMALL, q_lora_rank=24, topk_method="group_limited_greedy", n_group=4,
                                     topk_group=2, routed_scaling_factor=16.0, first_k_dense_replace=0)),
    # DeepSeek-V3's: sigmoid + correction bias, 2 of 4 groups by their best two, renormalised, ×2.5, YaRN mscale 1
    "v3": ("DeepseekV3", dict(SMALL, q_lora_rank=24, n_group=4, topk_group=2, routed_scaling_factor=2.5,
                              n_shared_experts=1, norm_topk_prob=True,
                              rope_parameters=dict(YARN, mscale=1.0, mscale_all_dim=1.0))),
    # rope_interleave false (halves), q/kv/o biases, not renormalised, one group, a tied head
    "v3-halves": ("DeepseekV3", dict(SMALL, rope_interleave=False, attention_bias=True, norm_topk_prob=False,
                                     n_group=1, topk_group=1, tie_word_embeddings=True)),
}


def hf_small(family: str, kw: dict):
    config = getattr(transformers, f"{family}Config")(**kw, attn_implementation="eager",
                                                       experts_implementation="eager")
    hf = ref.random_hf(getattr(transformers, f"{family}ForCausalLM"), config)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, b in hf.named_buffers():
            if name.endswith("e_score_correction_bias"):  # zeros at init: make the choice depend on it
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
    return config, hf


def imported(tmp_path, config):
    path = tmp_path / "config.json"
    config.to_json_file(str(path))
    text = from_hf_config(json.loads(path.read_text()), file=str(path), text=path.read_text())
    (tmp_path / "imported.yaml").write_text(text)
    return graphspec.load(tmp_path / "imported.yaml", ["seq_len=12"]), text


@pytest.mark.parametrize("case", sorted(CASES))
def test_imported_small_config_computes_hugging_faces_logits(tmp_path, case):
    family, kw = CASES[case]
    config, hf = hf_small(family, kw)
    m, text = imported(tmp_path, config)
    assert m.params() == ref.n_params(hf)
    scale = next(n for n in m.graph if n.op == "scale").a["k"]
    assert scale == pytest.approx(hf.model.layers[0].self_attn.scaling, rel=1e-12)
    graph, net, _ = ref.generated(m, "default")
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(2))
    assert ref.hf_logits_error(hf, net, graph, ids) < RTOL
    assert ("interleaved=true" in text) == kw.get("rope_interleave", True)


def hf_meta(family: str, **cfg):
    config = getattr(transformers, f"{family}Config").from_dict({**cfg, "attn_implementation": "eager"})
    with torch.device("meta"):
        return getattr(transformers, f"{family}ForCausalLM")(config).eval()


def flop_counted_macs(model, N: int) -> int:
    x = torch.zeros(1, N, dtype=torch.long, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=x)
    return fc.get_total_flops() // 2


V3 = ref.PUBLISHED_CONFIGS["deepseek_v3"]


def test_bundled_v3_params_equal_hugging_face_on_meta():
    """671,026,404,352 (paper: 671B); active: all but 248 of 256 routed experts in 58 layers (37B)."""
    m = graphspec.load("deepseek_v3")
    hf = hf_meta("DeepseekV3", **V3)
    n = ref.n_params(hf)
    experts = sum(p.numel() for k, p in hf.named_parameters() if ".mlp.experts." in k)
    assert experts == 58 * 256 * 3 * 7168 * 2048
    assert m.params() == n == 671_026_404_352 == m.spec.expect["params"]
    assert m.active_params() == n - experts * 248 // 256 == 37_552_282_624 == m.spec.expect["active_params"]
    assert hf.model.layers[0].self_attn.scaling == pytest.approx(
        next(x for x in m.graph if x.op == "scale").a["k"], rel=1e-12)  # (0.1·ln 40 + 1)² / √192


MLA = 7168 * 1536 + 1536 * 24576 + 7168 * 576 + 512 * 32768 + 16384 * 7168  # q_a, q_b, kv_a, kv_b, o


def test_bundled_v3_attention_and_dense_macs_equal_flop_counter_on_meta():
    """Full size at N = 128 with every layer dense: MLA's five projections, QKᵀ over 192 dims and
    ·V over 128, the dense SwiGLU and the head."""
    hf = hf_meta("DeepseekV3", **dict(V3, first_k_dense_replace=61))
    dense = graphspec.load("deepseek_v3", ["dense=61"])
    want = 128 * (61 * (MLA + 3 * 7168 * 18432) + 7168 * 129280) + 61 * 128 * 128**2 * 320
    assert dense.macs() == flop_counted_macs(hf, 128) == want


V3_SMALL_SET = ["vocab=500", "d=64", "L=3", "h=4", "q_rank=24", "kv_rank=32", "rope_dim=8", "nope_dim=16", "v_dim=12",
                "d_ff=96", "expert_ff=24", "experts=8", "top_k=2", "groups=4", "topk_groups=2", "dense=1",
                "seq_len=20"]


def test_bundled_v3_moe_macs_equal_flop_counter_and_the_bundled_figure():
    """The bundled spec at a small size on a real DeepseekV3ForCausalLM (each token in exactly
    top_k experts), then the bundled figure: 4,728,884,822,016 at N = 128."""
    _, hf = hf_small("DeepseekV3", dict(CASES["v3"][1], vocab_size=500, max_position_embeddings=163840,
                                         rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0,
                                                          "original_max_position_embeddings": 4096, "beta_fast": 32.0,
                                                          "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0}))
    m = graphspec.load("deepseek_v3", V3_SMALL_SET)
    assert m.params() == ref.n_params(hf)
    attn = 64 * 24 + 24 * 96 + 64 * 40 + 32 * 112 + 48 * 64
    moe = 64 * 8 + 2 * 3 * 64 * 24 + 3 * 64 * 24  # router, 2 of 8 experts, 1 shared
    assert m.macs() == flop_counted_macs(hf, 20) == 20 * (3 * attn + 3 * 64 * 96 + 2 * moe + 64 * 500) \
        + 3 * 4 * 20**2 * (24 + 12)
    ids = torch.randint(0, 500, (2, 20), generator=torch.Generator().manual_seed(3))
    graph, net, _ = ref.generated(m, "none")
    assert ref.hf_logits_error(hf, net, graph, ids) < RTOL  # the bundled spec itself computes HF's V3
    full = graphspec.load("deepseek_v3")
    moe = 7168 * 256 + 8 * 3 * 7168 * 2048 + 3 * 7168 * 2048
    want = 128 * (61 * MLA + 3 * 3 * 7168 * 18432 + 58 * moe + 7168 * 129280) + 61 * 128 * 128**2 * 320
    assert full.macs() == want == 4_728_884_822_016 == full.spec.expect["macs"]


@pytest.mark.parametrize("spec", ["deepseek_v2_lite", "deepseek_v3"])
def test_export_loads_in_transformers_with_the_bundled_params(tmp_path, spec):
    r = CliRunner().invoke(main, ["export", spec, "--format", "hf", "-o", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.output
    cfg = transformers.AutoConfig.from_pretrained(tmp_path / "hf")
    assert cfg.model_type == spec[:11]
    with torch.device("meta"):
        hf = getattr(transformers, cfg.architectures[0])(cfg)
    assert ref.n_params(hf) == graphspec.load(spec).params() == graphspec.load(spec).spec.expect["params"]
    want = ref.PUBLISHED_CONFIGS[spec]
    for key in ("first_k_dense_replace", "n_routed_experts", "num_experts_per_tok", "n_shared_experts", "n_group",
                "topk_group", "routed_scaling_factor", "norm_topk_prob", "q_lora_rank", "kv_lora_rank"):
        assert getattr(cfg, key) == want[key], key
    assert cfg.rope_parameters["factor"] == 40 and cfg.rope_parameters["mscale_all_dim"] == want["rope_scaling"][
        "mscale_all_dim"]


# (config changes on a released one, the words the message must hold)
BAD = [
    ("deepseek_v3", {"moe_layer_freq": 2}, "option moe_layer_freq = 2"),
    ("deepseek_v2_lite", {"topk_method": "noaux_tc"}, "option topk_method = \"noaux_tc\""),
    ("deepseek_v3", {"topk_method": "greedy"}, "option topk_method = \"greedy\""),
    ("deepseek_v2_lite", {"scoring_func": "sigmoid"}, "option scoring_func = \"sigmoid\""),
    ("deepseek_v3", {"scoring_func": "softmax"}, "option scoring_func = \"softmax\""),
    ("deepseek_v2_lite", {"norm_topk_prob": True}, "option norm_topk_prob = true"),
    ("deepseek_v2_lite", {"num_key_value_heads": 4}, "option num_key_value_heads = 4"),
    ("deepseek_v2_lite", {"mlp_bias": True}, "option mlp_bias = true"),
    ("deepseek_v3", {"num_experts_per_tok": None}, "option num_experts_per_tok = null"),
    ("deepseek_v3", {"n_group": None}, "n_group must be an integer"),
    ("deepseek_v3", {"index_topk": 2048}, "option index_topk = 2048 is not known"),  # DeepSeek-V3.2's indexer
]


@pytest.mark.parametrize("spec,change,words", BAD, ids=[w[:28] for _, _, w in BAD])
def test_unexpressible_configs_exit_2_naming_the_option(tmp_path, spec, change, words):
    cfg = {**ref.PUBLISHED_CONFIGS[spec], **change}
    text = json.dumps(cfg, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2, r.output
    key = next(iter(change))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln)
    assert f"config.json:{line}:3: error: " in r.output and words in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "s.yaml").exists()


def test_export_refuses_what_deepseek_v2_cannot_hold(tmp_path):
    r = CliRunner().invoke(main, ["export", "deepseek_v2_lite", "--format", "hf", "-o", str(tmp_path / "hf"),
                                  "--set", "L=2", "--set", "decoder.mlp=first(1, glu(d_ff, silu), "
                                  "moe(experts, top_k, expert=glu(expert_ff, silu), shared=shared))"])
    assert r.exit_code == 2, r.output
    assert "does not renormalise" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("case", ["v2-groups", "v3"])
def test_imported_module_exports_its_weights_back(tmp_path, case):
    """The generated module of an imported small config, perturbed (the correction bias too), exported
    with --weights: DeepseekV2/V3ForCausalLM.from_pretrained loads every tensor and computes its logits."""
    from safetensors.torch import save_file

    family, kw = CASES[case]
    m, _ = imported(tmp_path, getattr(transformers, f"{family}Config")(**kw))
    _, net, _ = ref.generated(m, "none")
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for t in [*net.parameters(), *(b for n, b in net.named_buffers() if n.endswith("e_score_correction_bias"))]:
            t.add_(0.02 * torch.randn(t.shape, generator=g))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    r = CliRunner().invoke(main, ["export", str(tmp_path / "imported.yaml"), "--format", "hf", "-o",
                                  str(tmp_path / "hf"), "--weights", str(tmp_path / "w.safetensors"),
                                  "--set", "seq_len=12"])
    assert r.exit_code == 0, r.output
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "hf", output_loading_info=True, attn_implementation="eager", experts_implementation="eager")
    assert type(hf).__name__ == f"{family}ForCausalLM" and not info["missing_keys"] and not info["unexpected_keys"]
    biases = [b for n, b in hf.named_buffers() if n.endswith("e_score_correction_bias")]
    assert (len(biases) == 2 and all(b.abs().max() > 0 for b in biases)) if family == "DeepseekV3" else not biases
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert ref.rel_err(net(ids), hf.eval()(input_ids=ids).logits) < RTOL
