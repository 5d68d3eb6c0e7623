"""`graphspec import`: Hugging Face configs become specs of the same model.

Every supported model_type, its Config class with the defaults and with two other settings
(tests/reference_hf.py: IMPORT_FAMILIES), written with `to_json_file` as a model repository
ships it, imports to a spec whose parameter count equals the HF model built on the meta device,
to the unit. Small configs of GPT-2, Llama, Mixtral, Qwen2, ViT and T5 import to specs whose
generated module, given the HF model's weights (graphspec.weights), computes HF's output
(≤ 1e-5 relative). Options graphspec cannot express are exit-2 errors naming them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

transformers = pytest.importorskip("transformers")
from graphspec.cli.main import main  # noqa: E402
from graphspec.codegen import emit, load  # noqa: E402

import graphspec  # noqa: E402
from graphspec.interchange import from_hf_config, supported  # noqa: E402
from graphspec.interchange.defaults import DEFAULTS  # noqa: E402
from graphspec.weights import to_graphspec  # noqa: E402


def _reference():
    spec = importlib.util.spec_from_file_location("graphspec_test_reference_hf", Path(__file__).with_name("reference_hf.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ref = _reference()
IMPORT_FAMILIES, hf_classes, meta, n_params, perturbed = (_ref.IMPORT_FAMILIES, _ref.hf_classes, _ref.meta,
                                                          _ref.n_params, _ref.perturbed)

CASES = [(mt, i) for mt, (_, _, settings) in IMPORT_FAMILIES.items() for i in range(1 + len(settings))]


def settings(mt: str, i: int) -> dict:
    return {} if i == 0 else IMPORT_FAMILIES[mt][2][i - 1]


def imported(tmp_path, cfg, name="imported"):
    """`cfg` written by to_json_file, imported, and the spec loaded."""
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    text = from_hf_config(json.loads(path.read_text()), file=str(path), text=path.read_text())
    (tmp_path / f"{name}.yaml").write_text(text)
    return graphspec.load(tmp_path / f"{name}.yaml"), text


@pytest.mark.parametrize("mt,i", CASES, ids=[f"{mt}-{i}" for mt, i in CASES])
def test_imported_params_equal_hf_meta_model(tmp_path, mt, i):
    cfg_cls, model_cls = hf_classes(mt, settings(mt, i))
    cfg = cfg_cls(**settings(mt, i))
    if i == 0 and mt in _ref.REFUSED_DEFAULTS:  # the class's defaults describe a model that cannot run
        with pytest.raises(graphspec.SpecError, match=_ref.REFUSED_DEFAULTS[mt]):
            imported(tmp_path, cfg)
        return
    m, text = imported(tmp_path, cfg)
    assert f"Imported from a Hugging Face `{mt}` config" in text
    assert m.params() == n_params(meta(model_cls, cfg))


ELSEWHERE = {"detr", "siglip", "llama4", "dinov2", "dinov2_with_registers", "modernbert"}
FAMILIES = sorted(set(DEFAULTS) - ELSEWHERE)  # detr: tests/test_hf_import_detr.py (its backbone
# needs timm or a ResNetConfig); siglip (SiglipModel: its vision tower is imported, not the text tower):
# tests/test_siglip.py; llama4 (Llama4ForConditionalGeneration: its text_config is imported): tests/test_llama4.py;
# dinov2 and dinov2_with_registers (the spec leaves out HF's mask_token): tests/test_dinov2.py; modernbert
# (its legacy config keys, the MLM head): tests/test_modernbert.py


def test_every_family_is_covered():
    assert sorted(IMPORT_FAMILIES) == FAMILIES == [mt for mt in supported() if mt not in ELSEWHERE]


@pytest.mark.parametrize("mt", FAMILIES)
def test_defaults_are_the_config_classes(mt):
    """A key a config file leaves out means the HF class's default; graphspec's table says the
    same (None where HF derives the value: num_key_value_heads = heads, head_dim = d / heads)."""
    cfg = getattr(transformers, IMPORT_FAMILIES[mt][0])()
    for key, value in DEFAULTS[mt].items():
        if value is None or not hasattr(cfg, key) or key == "layer_types":
            continue
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


def test_spec_reads_like_the_bundled_ones():
    text = graphspec.from_hf_config({**transformers.MistralConfig().to_dict(), "architectures": ["MistralForCausalLM"]})
    assert text.startswith("# Imported from a Hugging Face `mistral` config (MistralForCausalLM)")
    for line in ("names: hf", "embed: tokens(vocab, dim=d, pos=rope(10000, max_len=131072))", "  kv_heads: kv",
                 "  attention: sliding(4096)", "  mlp: glu(d_ff, silu)", "head: lm(tied=false)"):
        assert line in text.splitlines(), line


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


TINY = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
            num_key_value_heads=2, attention_dropout=0.0)
NUMERICS = {
    "gpt2": (dict(vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                  attn_pdrop=0.0), "ids"),
    "gpt2-untied": (dict(vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False, activation_function="gelu"), "ids"),
    "llama": (dict(TINY, attention_bias=True), "ids"),
    "mixtral": (dict(TINY, num_local_experts=4, num_experts_per_tok=2, router_jitter_noise=0.0,
                     experts_implementation="eager"), "ids"),
    "qwen2": (dict(TINY, tie_word_embeddings=True), "ids"),
    "vit": (dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, architectures=["ViTForImageClassification"], num_labels=10), "image"),
    "mistral": (dict(TINY, sliding_window=5), "ids"),
    "gemma": (dict(TINY, head_dim=16, hidden_act="gelu_pytorch_tanh"), "ids"),
    # 3 layers full, sliding, sliding (a per-layer list); the logit scale 20^-0.5, not head_dim's; caps
    # that the small logits really feel
    "gemma2": (dict(TINY, num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=20, sliding_window=5,
                    layer_types=["full_attention", "sliding_attention", "sliding_attention"],
                    attn_logit_softcapping=0.05, final_logit_softcapping=0.2, attention_bias=True), "ids"),
    "qwen3": (dict(TINY, head_dim=24, attention_bias=True), "ids"),
    # Llama 3.1's RoPE rule, and YaRN with DeepSeek's mscales (rope_parameters as transformers 5 writes them)
    "llama-3": (dict(TINY, rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                                high_freq_factor=4.0, original_max_position_embeddings=8)), "ids"),
    "llama-yarn": (dict(TINY, max_position_embeddings=64,
                        rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, mscale=0.707,
                                             mscale_all_dim=1.0, original_max_position_embeddings=16)), "ids"),
    # Gemma 3: 5 sliding layers (rope 1e4) for 1 global (rope 1e6, linear(8)), QK-norm, a 7th sliding layer
    "gemma3_text": (dict(TINY, num_hidden_layers=7, head_dim=16, query_pre_attn_scalar=16, sliding_window=5,
                         rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                          "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}), "ids"),
    # 4 experts, top 2, router weights not renormalised (Qwen3MoeConfig's default norm_topk_prob false)
    "qwen3_moe": (dict(TINY, head_dim=24, moe_intermediate_size=40, num_local_experts=4, num_experts_per_tok=2,
                       experts_implementation="eager"), "ids"),
    # 4 experts, top 2, not renormalised, a shared expert of 2 expert widths gated by sigmoid(shared_expert_gate(x))
    "qwen2_moe": (dict(TINY, moe_intermediate_size=40, shared_expert_intermediate_size=80, num_experts=4,
                       num_experts_per_tok=2, experts_implementation="eager"), "ids"),
    "olmo2": (dict(TINY, attention_bias=True), "ids"),  # q/k norms over all heads, norms after the sub-layers
    # fused qkv_proj (GQA: q 8·8 rows, k and v 2·8) and gate_up_proj; half of each head rotates
    "phi3": (dict(TINY, sliding_window=5, pad_token_id=0, rope_parameters={"rope_theta": 10000.0, "rope_type": "default",
                                                           "partial_rotary_factor": 0.5}), "ids"),
    "phi": (dict(TINY, num_key_value_heads=8, resid_pdrop=0.0, embd_pdrop=0.0,
                 rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"}), "ids"),
    "bert": (dict(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), "bert"),
    "swin": (dict(image_size=32, patch_size=4, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4,
                  architectures=["SwinForImageClassification"], num_labels=10, drop_path_rate=0.0), "image"),
    "pvt": (dict(image_size=32, depths=[1, 1], hidden_sizes=[8, 16], num_attention_heads=[1, 2], num_encoder_blocks=2,
                 sequence_reduction_ratios=[2, 1], mlp_ratios=[4, 4], patch_sizes=[4, 2], strides=[4, 2],
                 num_labels=10), "image"),
    "t5": (dict(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0), "t5"),
    # T5ForConditionalGeneration without the d_model^-0.5 rescale: `lm(tied=true)` on the shared embedding
    "t5-lm": (dict(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                   relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
                   scale_decoder_outputs=False, architectures=["T5ForConditionalGeneration"]), "t5-lm"),
}


@pytest.mark.parametrize("mt", sorted(NUMERICS))
def test_imported_small_config_computes_what_hf_computes(tmp_path, mt):
    kw, kind = NUMERICS[mt]
    cfg_cls, model_cls = hf_classes(mt.split("-")[0], kw)
    cfg = cfg_cls(**kw, attn_implementation="eager")
    torch.manual_seed(0)
    hf = perturbed(model_cls(cfg))
    m, _ = imported(tmp_path, cfg)
    assert m.params() == n_params(hf)
    gen = emit(m.graph, m.spec)
    net = getattr(load(gen.source), gen.class_name)().eval()
    net.load_state_dict(to_graphspec(hf, m.graph), strict=True)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        if kind == "ids":
            ids = torch.randint(0, 100, (2, 12), generator=g)
            got, want = net(ids), hf(input_ids=ids).logits
        elif kind == "bert":
            ids = torch.randint(0, 100, (2, 12), generator=g)
            out = hf(input_ids=ids)
            (got, pooled), want = net(ids), out.last_hidden_state
            assert rel_err(pooled, out.pooler_output) <= 1e-5
        elif kind == "image":
            x = torch.randn(2, 3, 32, 32, generator=g)
            got, want = net(x), hf(pixel_values=x).logits
        else:
            src, tgt = torch.randint(0, 100, (2, 10), generator=g), torch.randint(0, 100, (2, 6), generator=g)
            out = hf(input_ids=src, decoder_input_ids=tgt)
            got, want = net(src, tgt), out.logits if kind == "t5-lm" else out.last_hidden_state
    assert rel_err(got, want) <= 1e-5


def run_import(tmp_path, config, *args):
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=2))
    return CliRunner().invoke(main, ["import", str(path), *args])


BAD = [  # (config, the words the message must hold)
    ({**transformers.LlamaConfig().to_dict(), "rope_parameters": {"rope_type": "dynamic", "factor": 2.0,
                                                                   "rope_theta": 10000.0}},
     "option rope_parameters.rope_type = \"dynamic\" is not expressible"),
    ({"model_type": "llama", "rope_theta": 10000.0, "rope_scaling": {"type": "dynamic", "factor": 2.0}},
     "option rope_scaling.rope_type = \"dynamic\""),
    ({"model_type": "llama", "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}},
     "option rope_parameters.original_max_position_embeddings is missing"),
    ({"model_type": "llama", "rope_parameters": {"rope_type": "linear", "rope_theta": 5e5, "factor": 0.5}},
     "option rope_parameters.factor = 0.5 must be a number ≥ 1"),
    ({"model_type": "llama", "rope_parameters": {"rope_type": "linear", "rope_theta": 5e5, "factor": 2.0,
                                                 "beta_fast": 3}}, "option rope_parameters.beta_fast = 3"),
    ({"model_type": "llama", "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                                                 "original_max_position_embeddings": 4096, "beta_fast": 1,
                                                 "beta_slow": 2}}, "beta_fast 1 must exceed beta_slow 2"),
    ({"model_type": "gemma3_text", "rope_parameters": {"full_attention": {"rope_type": "longrope", "rope_theta": 1e6}}},
     "option rope_parameters.full_attention.short_factor = null must be a list of positive numbers, one per rotated "
     "pair of dims (128)"),
    ({"model_type": "llama", "rope_parameters": {"rope_theta": 5e5, "rope_type": "default"}, "rope_theta": 1e4},
     "option rope_theta = 10000.0 contradicts rope_parameters"),
    ({"model_type": "gpt2", "activation_function": "gelu_fast"}, "option activation_function = \"gelu_fast\""),
    ({"model_type": "gpt2", "scale_attn_by_inverse_layer_idx": True}, "option scale_attn_by_inverse_layer_idx"),
    ({"model_type": "qwen2", "use_sliding_window": True}, "option use_sliding_window = true"),
    ({"model_type": "qwen3_moe", "decoder_sparse_step": 2}, "option decoder_sparse_step = 2"),
    ({"model_type": "qwen3_moe", "mlp_only_layers": [0]}, "option mlp_only_layers = [0]"),
    ({"model_type": "qwen2_moe", "decoder_sparse_step": 2}, "option decoder_sparse_step = 2"),
    ({"model_type": "qwen2_moe", "shared_expert_intermediate_size": 5000},
     "option shared_expert_intermediate_size = 5000"),
    ({"model_type": "qwen3", "use_sliding_window": True, "sliding_window": 4096}, "option use_sliding_window = true"),
    ({"model_type": "qwen3", "layer_types": ["sliding_attention"] * 32}, "option layer_types"),
    ({"model_type": "gemma2", "layer_types": ["full_attention"] * 3}, "one of 'sliding_attention' or 'full_attention' per layer (26)"),
    ({"model_type": "gemma2", "layer_types": ["chunked_attention"] * 26}, "option layer_types"),
    ({"model_type": "gemma2", "sliding_window": None}, "option sliding_window = null"),
    ({"model_type": "gemma2", "use_bidirectional_attention": True}, "option use_bidirectional_attention = true"),
    ({"model_type": "gemma2", "hidden_activation": "gelu_fast"}, "option hidden_activation = \"gelu_fast\""),
    ({"model_type": "gemma2", "query_pre_attn_scalar": "256"}, "query_pre_attn_scalar must be a positive number"),
    ({"model_type": "gemma2", "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}},
     "option rope_parameters.original_max_position_embeddings is missing: rope_type \"yarn\" needs it"),
    ({"model_type": "phi3", "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 47,
                                             "long_factor": [1.0] * 48}},
     "option rope_scaling.short_factor has 47 factors, but each head rotates 96 dims (48 factors)"),
    ({"model_type": "phi3", "rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}},
     "option rope_parameters.short_factor = null must be a list of positive numbers"),
    ({"model_type": "t5", "feed_forward_proj": "gated-gelu"}, "option feed_forward_proj = \"gated-gelu\""),
    ({"model_type": "bert", "architectures": ["BertForMultipleChoice"]}, "option architectures"),
    ({"model_type": "bert", "is_decoder": True, "add_cross_attention": True}, "option add_cross_attention = true"),
    ({"model_type": "phi", "qk_layernorm": True}, "option qk_layernorm"),
    ({"model_type": "phi", "tie_word_embeddings": True}, "option tie_word_embeddings = true"),
    ({"model_type": "swin", "use_absolute_embeddings": True}, "option use_absolute_embeddings"),
    ({"model_type": "vit", "pooler_act": "relu"}, "option pooler_act"),
    ({"model_type": "pvt", "strides": [4, 2, 1, 2]}, "option patch_sizes"),
    ({"model_type": "swin", "image_size": 200}, "window 7 does not divide the 50×50 map"),
    ({"model_type": "llama", "my_new_option": 3}, "option my_new_option = 3 is not known"),
    ({"model_type": "gpt2", "n_embd": "768"}, "n_embd must be an integer"),
    ({"model_type": "gpt2", "n_layer": True}, "n_layer must be an integer"),
    ({"model_type": "swin", "depths": [2, "2"]}, "depths must be a list"),
    ({"model_type": "whisper"}, "supported model types: bert, camembert, deepseek_v2, deepseek_v3, deit, detr, dinov2, "
                                 "dinov2_with_registers, distilbert, electra, gemma, gemma2, gemma3_text, "
                                 "glm4_moe, gpt2, gpt_oss, gptj, llama, llama4, llama4_text, mistral, mixtral, modernbert, olmo2, olmo3, opt, phi, "
                                 "phi3, pvt, qwen2, qwen2_moe, qwen3, qwen3_moe, roberta"),
    ({"model_type": "detr", "dilation": True, "use_timm_backbone": False, "backbone": None,
      "backbone_config": {"model_type": "resnet"}}, "option dilation = true with transformers' own ResNet"),
    ({"hidden_size": 64}, "model_type null is not one graphspec imports"),
    ("[1, 2]", "a config is a JSON object"),
    ("{'model_type': 'gpt2'}", "not a JSON config"),
    ('{"model_type": "gpt2", "n_embd": NaN}', "not a JSON config"),
    ('{"model_type": "gpt2", "a": ' + "[" * 40 + "]" * 40 + "}", "nested more than 16 levels"),
    ('{"model_type": "gpt2", "pad": "' + "x" * (1 << 20) + '"}', "at most 1,048,576"),
]


@pytest.mark.parametrize("config,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_unexpressible_or_bad_configs_exit_2_naming_the_option(tmp_path, config, words):
    r = run_import(tmp_path, config, "-o", str(tmp_path / "spec.yaml"))
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output
    assert not (tmp_path / "spec.yaml").exists()


def test_strings_of_the_config_cannot_write_yaml(tmp_path):
    """`architectures` goes into the header comment only as a class name; --name is checked."""
    cfg = {"model_type": "gpt2", "n_layer": 1, "architectures": ["GPT2LMHeadModel\nhead: none"]}
    r = run_import(tmp_path, cfg)
    assert r.exit_code == 2 and "option architectures" in r.output
    with pytest.raises(graphspec.SpecError, match="spec name"):
        from_hf_config({"model_type": "gpt2"}, name="x\nhead: none")
    r = run_import(tmp_path, {"model_type": "gpt2"}, "--name", "a b")
    assert r.exit_code == 2 and "spec name" in r.output


def test_errors_are_located_at_the_option(tmp_path):
    cfg = transformers.GPT2Config(activation_function="gelu_fast").to_dict()
    r = run_import(tmp_path, cfg)
    line = next(i for i, ln in enumerate(json.dumps(cfg, indent=2).splitlines(), 1) if '"activation_function"' in ln)
    assert f"config.json:{line}:3: error: option activation_function" in r.output


def test_cli_writes_once_and_replaces_only_with_force(tmp_path):
    out = tmp_path / "gpt2.yaml"
    cfg = transformers.GPT2Config(n_layer=2).to_dict()
    r = run_import(tmp_path, cfg, "-o", str(out), "--name", "gpt2_small")
    assert r.exit_code == 0, r.output
    assert graphspec.load(out).params() == n_params(meta(transformers.GPT2LMHeadModel, transformers.GPT2Config(n_layer=2)))
    assert "name: gpt2_small" in out.read_text()
    before = out.read_text()
    r = run_import(tmp_path, {**cfg, "n_layer": 3}, "-o", str(out))
    assert r.exit_code == 2 and "--force" in r.output and out.read_text() == before
    r = run_import(tmp_path, {**cfg, "n_layer": 3}, "-o", str(out), "--force")
    assert r.exit_code == 0 and "L=3" in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def ir(graph) -> list[str]:
    """The IR's lines without the source locations."""
    return [ln.split("  #")[0] for ln in str(graph).splitlines()[1:]]


@pytest.mark.parametrize("spec", sorted(_ref.PUBLISHED_CONFIGS))
def test_published_config_reproduces_the_bundled_spec(tmp_path, spec):
    """Real config.json files (transformers 4.x keys) import to the bundled spec's model: the
    same IR node for node (Phi-2's config carries resid_pdrop 0.1, which the bundled spec
    leaves out: there parameters and MACs only)."""
    cfg = _ref.PUBLISHED_CONFIGS[spec]
    (tmp_path / "i.yaml").write_text(from_hf_config(cfg))
    bundled = graphspec.load(spec)
    got = graphspec.load(tmp_path / "i.yaml", [f"seq_len={bundled.spec.input.seq_len}"])
    assert (got.params(), got.macs()) == (bundled.params(), bundled.macs())
    assert got.params() == bundled.spec.expect["params"]  # the published count (gpt2: 124,439,808)
    if spec != "phi2":
        assert ir(got.graph) == ir(bundled.graph)


def test_qwen3_8b_figures_are_hugging_faces():
    """specs/qwen3_8b.yaml's expect: Qwen3ForCausalLM from Qwen3-8B's config on the meta device
    (8,190,735,360 parameters: the report's 8.2B, 6.95B without the two embeddings) and
    FlopCounterMode / 2 at N = 128 with eager attention."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = transformers.Qwen3Config.from_dict({**_ref.PUBLISHED_CONFIGS["qwen3_8b"], "attn_implementation": "eager"})
    m = graphspec.load("qwen3_8b")
    with torch.device("meta"):
        hf = transformers.Qwen3ForCausalLM(cfg).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            hf(input_ids=torch.zeros(1, 128, dtype=torch.long))
    assert n_params(hf) == m.params() == m.spec.expect["params"] == 8_190_735_360
    assert n_params(hf) - 2 * 151936 * 4096 == 6_946_075_648
    assert fc.get_total_flops() // 2 == m.macs() == m.spec.expect["macs"]


@pytest.mark.parametrize("mt", FAMILIES)
def test_a_config_of_model_type_only_means_the_defaults(tmp_path, mt):
    """Older transformers write only what differs from the defaults: {"model_type": mt} is the
    default model."""
    if mt in _ref.REFUSED_DEFAULTS:
        with pytest.raises(graphspec.SpecError, match=_ref.REFUSED_DEFAULTS[mt]):
            from_hf_config({"model_type": mt})
        return
    (tmp_path / "a.yaml").write_text(from_hf_config({"model_type": mt}))
    cfg_cls, model_cls = hf_classes(mt)
    assert graphspec.load(tmp_path / "a.yaml").params() == n_params(meta(model_cls, cfg_cls()))


# The config.json files of google-bert/bert-base-uncased and google-t5/t5-base as their model
# repositories ship them. Each declares a task head: BertForMaskedLM, T5ForConditionalGeneration.
# Checked against Girafboy/pytorchKQI example/evaluate.py @9632690 (`bert_base_uncased`, `t5_base`):
# BERT agrees key for key; T5's task_specific_params also hold translation_en_to_fr and
# translation_en_to_ro (this dict had left them out).
BERT_BASE_UNCASED = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}
T5_BASE_CONFIG = {
    "architectures": ["T5ForConditionalGeneration"], "d_ff": 3072, "d_kv": 64, "d_model": 768,
    "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1, "initializer_factor": 1.0,
    "is_encoder_decoder": True, "layer_norm_epsilon": 1e-06, "model_type": "t5", "n_positions": 512,
    "num_heads": 12, "num_layers": 12, "output_past": True, "pad_token_id": 0, "relative_attention_num_buckets": 32,
    "task_specific_params": {
        "summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 200, "min_length": 30,
                          "no_repeat_ngram_size": 3, "num_beams": 4, "prefix": "summarize: "},
        "translation_en_to_de": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                                 "prefix": "translate English to German: "},
        "translation_en_to_fr": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                                 "prefix": "translate English to French: "},
        "translation_en_to_ro": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                                 "prefix": "translate English to Romanian: "}},
    "vocab_size": 32128}
# (config, bundled spec of the base model, HF base class, the head it imports with)
TASK_HEADS = {"bert": (BERT_BASE_UNCASED, "bert_base", "BertModel", "head: mlm(gelu, eps=1e-12)"),
              "t5": (T5_BASE_CONFIG, "t5_base", "T5Model", "head: lm(tied=true, scale=d_model**-0.5)")}


@pytest.mark.parametrize("mt", sorted(TASK_HEADS))
def test_published_task_head_config_imports_with_its_head_and_base_without(tmp_path, mt):
    """bert-base-uncased's and t5-base's own config.json: imported with their heads (`mlm`, T5's
    scaled `lm`), HF's BertForMaskedLM / T5ForConditionalGeneration count on meta; with --base,
    the base model: HF's BertModel / T5Model count (109,482,240 / 222,903,552, the bundled specs'
    published figures) and the bundled spec's MACs."""
    cfg, bundled, base_cls, head = TASK_HEADS[mt]
    out = tmp_path / "spec.yaml"
    r = run_import(tmp_path, cfg, "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_text().endswith(head + "\n")
    hf_cfg = getattr(transformers, IMPORT_FAMILIES[mt][0]).from_dict(cfg)
    assert graphspec.load(out).params() == n_params(meta(getattr(transformers, cfg["architectures"][0]), hf_cfg))
    out.unlink()
    r = run_import(tmp_path, cfg, "-o", str(out), "--base")
    assert r.exit_code == 0, r.output
    text = out.read_text()
    left_out = text.split("name:")[0]
    assert f"# --base: {cfg['architectures'][0]}'s head was left out: the " in left_out
    assert "`" + head.removeprefix("head: ").split("(")[0] in left_out  # `mlm` / `lm(...)`
    assert f"# This spec is the base model, {base_cls}." in text
    got, ref = graphspec.load(out), graphspec.load(bundled)
    assert got.params() == n_params(meta(getattr(transformers, base_cls), hf_cfg)) == ref.spec.expect["params"]
    assert got.macs() == ref.macs()


@pytest.mark.parametrize("mt,arch", [("bert", "BertForMaskedLM"), ("t5", "T5ForConditionalGeneration")])
def test_to_json_file_with_a_task_head(tmp_path, mt, arch):
    """The Config class with `architectures` set, written by to_json_file: the head model's count;
    base=True gives the base model's. T5 without the rescale (scale_decoder_outputs false) is
    `lm(tied=true)`: T5ForConditionalGeneration's count (its lm_head is the shared embedding)."""
    cfg_cls = getattr(transformers, IMPORT_FAMILIES[mt][0])
    cfg = cfg_cls(architectures=[arch], num_hidden_layers=2) if mt == "bert" else cfg_cls(architectures=[arch])
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    data = json.loads(path.read_text())
    (tmp_path / "h.yaml").write_text(from_hf_config(data))
    assert graphspec.load(tmp_path / "h.yaml").params() == n_params(meta(getattr(transformers, arch), cfg))
    (tmp_path / "b.yaml").write_text(from_hf_config(data, base=True))
    base_cls = getattr(transformers, IMPORT_FAMILIES[mt][1])
    assert graphspec.load(tmp_path / "b.yaml").params() == n_params(meta(base_cls, cfg))
    if mt == "t5":
        cfg = cfg_cls(architectures=[arch], scale_decoder_outputs=False)
        cfg.to_json_file(str(path))
        text = from_hf_config(json.loads(path.read_text()))
        assert text.endswith("head: lm(tied=true)\n")
        (tmp_path / "lm.yaml").write_text(text)
        assert graphspec.load(tmp_path / "lm.yaml").params() == n_params(meta(transformers.T5ForConditionalGeneration,
                                                                                 cfg))
        legacy = {**json.loads(path.read_text()), "tie_word_embeddings": False}
        legacy.pop("scale_decoder_outputs")
        with pytest.raises(graphspec.SpecError, match="untied lm_head to transformers 4"):
            from_hf_config(legacy)


def test_base_without_a_task_head_is_the_base_model():
    """--base always means the base model: GPT2LMHeadModel's config gives GPT2Model (no head)."""
    text = from_hf_config({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, base=True)
    assert "head: none" in text.splitlines() and "GPT2LMHeadModel's head was left out" in text
    assert "left out" not in from_hf_config({"model_type": "gpt2", "architectures": ["GPT2Model"]}, base=True)


def test_top_level_entry_point_takes_base(tmp_path):
    """graphspec.from_hf_config(cfg, base=True) is the Python form of `graphspec import --base`:
    BertForMultipleChoice's head is refused, the base model imports with BertModel's parameter count."""
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, architectures=["BertForMultipleChoice"])
    with pytest.raises(graphspec.SpecError, match="BertForMultipleChoice"):
        graphspec.from_hf_config(cfg.to_dict())
    (tmp_path / "bert.yaml").write_text(graphspec.from_hf_config(cfg.to_dict(), base=True))
    assert graphspec.load(tmp_path / "bert.yaml").params() == n_params(meta(transformers.BertModel, cfg))
