"""specs/olmo3_7b.yaml and the `olmo3` family through Hugging Face configs
(graphspec/interchange/hf_olmo3_glm.py), against transformers 5's Olmo3ForCausalLM: OLMo 2's block
(norms after the sub-layers, q/k norms over all heads) with sliding-window attention in three of
every four layers and YaRN on the full-attention layers only (rope_parameters per layer type).

The bundled spec's parameters equal Olmo3ForCausalLM's on the meta device (7,298,011,136, the
hub's count for Olmo-3-1025-7B), its MACs FlopCounterMode / 2 (eager attention) on the meta device
at N = 128 and the formula beside `expect:`. At a small size (window 5 < N = 12, YaRN from 8
positions; random weights, every parameter perturbed) the bundled spec's generated module, the
interpreter and torch.fx, given HF's weights strictly, compute HF's logits to 1e-5, and the same
spec without the sliding layers, or with YaRN on every layer, does not. The published config
imports to the bundled spec node for node, small configs written by `to_json_file` import to
specs that compute HF's logits, `graphspec export --format hf --weights` gives a directory
Olmo3ForCausalLM loads with every tensor, and configs graphspec cannot express exit 2 naming the
option. (Olmo3Config's defaults and two more settings: tests/test_hf_import.py and
test_hf_export.py through reference_hf.IMPORT_FAMILIES.)"""

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
YARN = {"attention_factor": 1.2079441541679836, "beta_fast": 32.0, "beta_slow": 1.0, "factor": 8.0,
        "original_max_position_embeddings": 8192, "rope_type": "yarn"}
# allenai/Olmo-3-7B-Think's config.json as public copies quote it (transformers 4.57 keys: rope_theta for both
# layer types, rope_scaling for the full ones): the sizes, eps, window, layer_types and rope block of a
# serving test's `_hf_config` for Olmo3ForCausalLM, its rope block as a write-up quotes
# huggingface.co/allenai/Olmo-3-7B-Think/raw/main/config.json, and the token ids of the public tiny-model
# script built from it (repositories not shown by the code index). Not a verbatim copy of the hub file.
OLMO3_7B = {"architectures": ["Olmo3ForCausalLM"], "model_type": "olmo3", "attention_bias": False,
            "attention_dropout": 0.0, "eos_token_id": 100257, "pad_token_id": 100277, "hidden_act": "silu",
            "hidden_size": 4096, "intermediate_size": 11008, "initializer_range": 0.02,
            "layer_types": (["sliding_attention"] * 3 + ["full_attention"]) * 8, "max_position_embeddings": 65536,
            "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "rms_norm_eps": 1e-6,
            "rope_scaling": YARN, "rope_theta": 500000, "sliding_window": 4096, "tie_word_embeddings": False,
            "torch_dtype": "bfloat16", "transformers_version": "4.57.1", "use_cache": True, "vocab_size": 100278}
SMALL_ROPE = {"full_attention": {**YARN, "original_max_position_embeddings": 8, "rope_theta": 500000.0},
              "sliding_attention": {"rope_type": "default", "rope_theta": 500000.0}}
SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
             max_position_embeddings=64, rms_norm_eps=1e-6, sliding_window=5, rope_parameters=SMALL_ROPE,
             pad_token_id=None, eos_token_id=None, bos_token_id=None)
SMALL_SET = ["vocab=120", "d=64", "L=4", "h=4", "d_ff=96", "window=5", "seq_len=12", "batch=2"]
SMALL_TEXT = [("original=8192", "original=8"), ("max_len=65536", "max_len=64")]


def hf_model(**kw):
    return ref.random_hf(transformers.Olmo3ForCausalLM,
                         transformers.Olmo3Config(**{**SMALL, **kw}, attn_implementation="eager"))


def ids(n=12, seed=1):
    return torch.randint(0, 120, (2, n), generator=torch.Generator().manual_seed(seed))


def load_text(tmp_path, changes=(), overrides=SMALL_SET):
    text = (graphspec.SPECS_DIR / "olmo3_7b.yaml").read_text()
    for old, new in [*SMALL_TEXT, *changes]:
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "s.yaml").write_text(text)
    return graphspec.load(tmp_path / "s.yaml", overrides)


def test_bundled_counts_equal_hugging_face_on_meta():
    """7,298,011,136 parameters and 885,798,207,488 MACs at N = 128 (every pair: N < the window)."""
    m = graphspec.load("olmo3_7b")
    cfg = transformers.Olmo3Config(**{k: v for k, v in OLMO3_7B.items() if k not in ("model_type", "torch_dtype")},
                                   attn_implementation="eager")
    assert cfg.rope_parameters["full_attention"]["rope_type"] == "yarn"
    assert cfg.rope_parameters["sliding_attention"]["rope_type"] == "default"
    with torch.device("meta"):
        hf = transformers.Olmo3ForCausalLM(cfg).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            hf(input_ids=torch.zeros(1, 128, dtype=torch.long))
    assert ref.n_params(hf) == m.params() == m.spec.expect["params"] == 7_298_011_136
    want = 128 * (32 * (4 * 4096**2 + 3 * 4096 * 11008) + 4096 * 100278) + 32 * 2 * 128**2 * 4096
    assert fc.get_total_flops() // 2 == m.macs() == m.spec.expect["macs"] == want == 885_798_207_488


@pytest.mark.parametrize("passes", ["none", "default"])
def test_bundled_spec_computes_olmo3_logits(tmp_path, passes):
    """The bundled spec at a small size (3 sliding layers of window 5, then a full one with YaRN)
    = Olmo3ForCausalLM's logits with its weights, strictly; mapped back, HF's own tensors bit for bit."""
    hf = hf_model()
    assert hf.config.layer_types == ["sliding_attention"] * 3 + ["full_attention"]
    graph, net, _ = ref.generated(load_text(tmp_path), passes)
    assert ref.hf_logits_error(hf, net, graph, ids()) < RTOL
    assert ref.round_trip_mismatches(net, graph, "llama", hf) == []
    assert ref.hf_interpreter_error(hf, graph, ids()) < RTOL


def test_torch_fx_computes_olmo3_logits(tmp_path):
    from graphspec.codegen.fx import to_fx

    from graphspec.passes import run_pipeline
    from graphspec.weights import to_graphspec

    hf, m = hf_model(), load_text(tmp_path)
    for g in (m.graph, run_pipeline(m.graph, "default", echo=lambda s: None)[0]):
        gm = to_fx(g).eval()
        gm.load_state_dict(to_graphspec(hf, g), strict=True)
        with torch.no_grad():
            assert ref.rel_err(gm(ids()), hf(input_ids=ids()).logits) < RTOL


@pytest.mark.parametrize("change", [
    ("pattern(sliding(window, pos=rope(500000)) * 3, causal)", "pattern(causal(pos=rope(500000)) * 3, causal)"),
    ("pattern(sliding(window, pos=rope(500000)) * 3, causal)", "pattern(sliding(window) * 3, causal)"),
], ids=["no-sliding-layers", "yarn-on-every-layer"])
def test_each_feature_is_seen(tmp_path, change):
    """Without the window, or with the full layers' YaRN on the sliding ones too: > 1e-3 off."""
    hf = hf_model()
    graph, net, _ = ref.generated(load_text(tmp_path, [change]))
    assert ref.hf_logits_error(hf, net, graph, ids()) > 1e-3


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
    """Olmo-3-7B's config (legacy rope_theta / rope_scaling) -> the bundled spec's IR node for
    node; exported back, its sizes, window, layer_types and both ropes."""
    from graphspec.interchange.hf_export import to_hf_config

    m, text = imported(tmp_path, OLMO3_7B)
    assert "  attention: pattern(sliding(4096, pos=rope(500000)) * 3, causal)" in text.splitlines()
    bundled = graphspec.load("olmo3_7b")
    assert ir_lines(m) == ir_lines(bundled) and m.params() == bundled.params()
    out = to_hf_config(bundled)
    assert out["model_type"] == "olmo3" and out["architectures"] == ["Olmo3ForCausalLM"]
    assert out["rope_parameters"] == {"full_attention": {**YARN, "rope_theta": 500000.0},
                                      "sliding_attention": {"rope_type": "default", "rope_theta": 500000.0}}
    shared = {k for k in OLMO3_7B if k in out}
    assert len(shared) >= 14 and {k: OLMO3_7B[k] for k in shared} == {k: out[k] for k in shared}


CONFIGS = {  # small Olmo3 configs beside SMALL: the default layer_types rule, alternating with GQA and biases
    "default-layer-types": dict(num_hidden_layers=8),
    "alternating-gqa-biases": dict(num_hidden_layers=4, layer_types=["sliding_attention", "full_attention"] * 2,
                                   num_key_value_heads=2, attention_bias=True, tie_word_embeddings=True,
                                   rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0,
                                                                       "rope_theta": 10000.0},
                                                    "sliding_attention": {"rope_type": "default",
                                                                          "rope_theta": 500000.0}}),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_imported_small_config_computes_olmo3_logits(tmp_path, case):
    hf = hf_model(**CONFIGS[case])
    m, text = imported(tmp_path, hf.config)
    assert m.params() == ref.n_params(hf)
    graph, net, _ = ref.generated(m, "default")
    assert ref.hf_logits_error(hf, net, graph, ids()) < RTOL
    assert "sliding(5" in text, text


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def test_export_with_weights_loads_in_transformers(tmp_path):
    """export --format hf --weights of the bundled spec at a small size: Olmo3ForCausalLM.from_pretrained
    loads every tensor and computes the generated module's logits."""
    from safetensors.torch import save_file

    m = load_text(tmp_path)
    _, net, _ = ref.generated(m, "none")
    ref.perturbed(net, seed=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    sets = [a for s in SMALL_SET for a in ("--set", s)]
    r = cli("export", tmp_path / "s.yaml", "--format", "hf", "-o", tmp_path / "hf", "--weights",
            tmp_path / "w.safetensors", *sets)
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["layer_types"] == ["sliding_attention"] * 3 + ["full_attention"] and cfg["sliding_window"] == 5
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True,
                                                                 attn_implementation="eager")
    assert type(hf).__name__ == "Olmo3ForCausalLM" and not info["missing_keys"] and not info["unexpected_keys"]
    assert ref.n_params(hf) == m.params()
    with torch.no_grad():
        assert ref.rel_err(net(ids()), hf.eval()(input_ids=ids()).logits) < RTOL


BAD = [  # (change to Olmo-3-7B's config, the words the message must hold)
    ({"layer_types": ["sliding_attention"] * 31}, "option layer_types = "),
    ({"layer_types": ["chunked_attention"] * 32}, "one of 'sliding_attention' or 'full_attention' per layer (32)"),
    ({"sliding_window": None}, "option sliding_window = null is not expressible"),
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope_type = \"dynamic\" is not expressible"),
    ({"rope_parameters": {"chunked_attention": {"rope_theta": 1.0}}}, "option rope_theta beside rope_parameters"),
]


@pytest.mark.parametrize("change,words", BAD, ids=[w[:30] for _, w in BAD])
def test_unexpressible_configs_exit_2_naming_the_option(tmp_path, change, words):
    text = json.dumps({**OLMO3_7B, **change}, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = cli("import", tmp_path / "config.json", "-o", tmp_path / "s.yaml")
    assert r.exit_code == 2, r.output
    key = "rope_theta" if "rope_parameters" in change else next(iter(change))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln)
    assert f"config.json:{line}:3: error: " in r.output and words in r.output, r.output
    assert not (tmp_path / "s.yaml").exists()


def test_a_per_layer_type_rope_block_that_names_another_type_exits_2(tmp_path):
    cfg = {k: v for k, v in OLMO3_7B.items() if k not in ("rope_theta", "rope_scaling")}
    text = json.dumps({**cfg, "rope_parameters": {"chunked_attention": {"rope_theta": 1.0}}}, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = cli("import", tmp_path / "config.json", "-o", tmp_path / "s.yaml")
    assert r.exit_code == 2 and "one object per layer type, 'full_attention' and 'sliding_attention'" in r.output


def test_export_refuses_what_olmo3_cannot_hold(tmp_path):
    """Two windows: an Olmo3 config holds one sliding_window."""
    r = cli("export", "olmo3_7b", "--format", "hf", "-o", tmp_path / "hf", "--set", "L=4",
            "--set", "decoder.attention=pattern(sliding(8), sliding(16), sliding(8), causal)")
    assert r.exit_code == 2, r.output
    assert "an OLMo 3 config holds full layers" in r.output


def test_onnx_and_tvm_compute_olmo3_logits(tmp_path):
    """ONNX (onnxruntime; unfused and after the default passes) and TVM Relax (llvm, default passes)
    of the small bundled spec, given HF's weights: Olmo3ForCausalLM's logits < 1e-4 (the sliding
    band and YaRN's table on the full layer, as graph constants)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    errors = ref.hf_backend_errors(hf_model(), load_text(tmp_path), ids())
    assert all(e < 1e-4 for e in errors.values()), errors
