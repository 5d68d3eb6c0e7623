"""specs/smollm3_3b.yaml and the `smollm3` family through Hugging Face configs
(graphspec/interchange/hf_import_llm.py `_nope_masks`, hf_export.py `_smollm3`), against
transformers 5's SmolLM3ForCausalLM: Llama's block where layers with a 0 in `no_rope_layers`
skip apply_rotary_pos_emb (`causal(pos=none)`).

The bundled spec's parameters equal SmolLM3ForCausalLM's on the meta device, its MACs
FlopCounterMode / 2 (eager attention) on the meta device at N = 128, and the formula beside
`expect:`. At a small size (random weights, every parameter perturbed) the bundled spec's
generated module, given HF's weights strictly, computes HF's logits to 1e-5 (and the same module
with RoPE in every layer does not); small configs written by `to_json_file` import to specs that
do the same; `graphspec export --format hf --weights` gives a directory SmolLM3ForCausalLM loads
with every tensor and the module's logits; configs graphspec cannot express exit 2 naming the
option. (SmolLM3Config's defaults and two more settings: tests/test_hf_import.py and
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
# HuggingFaceTB/SmolLM3-3B's config.json as far as public copies show it: not a verbatim copy (none was
# found). The sizes, eps, RoPE base, context, tie and no_rope_layers are the values two partial copies agree
# on (a C# test's "authoritative copy of HuggingFaceTB/SmolLM3-3B/config.json's shape" and a build test's
# checkpoint config, repositories not shown by the code index), with its transformers 4.x keys (top-level
# rope_theta) and the token ids / pretraining_tp of the second.
SMOLLM3_3B = {"architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "vocab_size": 128256,
              "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
              "num_key_value_heads": 4, "rms_norm_eps": 1e-6, "rope_theta": 5_000_000.0, "bos_token_id": 128000,
              "eos_token_id": 128012, "pad_token_id": 128004, "tie_word_embeddings": True,
              "max_position_embeddings": 65536, "hidden_act": "silu", "no_rope_layer_interval": 4,
              "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(36)], "pretraining_tp": 2}
FULL = dict(rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0}, max_position_embeddings=65536)
SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, attention_dropout=0.0, pad_token_id=None,
             bos_token_id=None, eos_token_id=None, rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0})
SMALL_SET = ["vocab=120", "d=64", "L=4", "h=4", "kv=2", "d_ff=96", "seq_len=12", "batch=2"]


def hf_model(device=None, **kw):
    cfg = transformers.SmolLM3Config(**{**SMALL, **kw}, attn_implementation="eager")
    if device == "meta":
        return ref.meta(transformers.SmolLM3ForCausalLM, cfg)
    return ref.random_hf(transformers.SmolLM3ForCausalLM, cfg)


def ids(n=12, seed=1):
    return torch.randint(0, 120, (2, n), generator=torch.Generator().manual_seed(seed))


def test_bundled_counts_equal_hugging_face_on_meta():
    """3,075,098,624 parameters (tied: one embedding) and 396,009,406,464 MACs at N = 128."""
    m = graphspec.load("smollm3_3b")
    cfg = transformers.SmolLM3Config(**FULL, attn_implementation="eager")
    assert cfg.no_rope_layers == [1, 1, 1, 0] * 9
    with torch.device("meta"):
        hf = transformers.SmolLM3ForCausalLM(cfg).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            hf(input_ids=torch.zeros(1, 128, dtype=torch.long))
    assert ref.n_params(hf) == m.params() == m.spec.expect["params"] == 3_075_098_624
    per_token = 2048 * (2048 + 2 * 512) + 2048 * 2048 + 3 * 2048 * 11008  # q, k, v (GQA 4), o, SwiGLU
    want = 128 * 36 * per_token + 36 * 2 * 128**2 * 2048 + 128 * 2048 * 128256  # + scores and values, + head
    assert fc.get_total_flops() // 2 == m.macs() == m.spec.expect["macs"] == want == 396_009_406_464


@pytest.mark.parametrize("passes", ["none", "default"])
def test_bundled_spec_computes_smollm3_logits(passes):
    """The bundled spec at a small size (4 layers: the 4th without RoPE) = SmolLM3ForCausalLM's
    logits with its weights, strictly; mapped back, HF's own tensors bit for bit."""
    hf = hf_model()
    assert hf.config.no_rope_layers == [1, 1, 1, 0]
    graph, net, _ = ref.generated(graphspec.load("smollm3_3b", SMALL_SET), passes)
    assert ref.hf_logits_error(hf, net, graph, ids()) < RTOL
    assert ref.round_trip_mismatches(net, graph, "llama", hf) == []
    assert ref.hf_interpreter_error(hf, graph, ids()) < RTOL


def test_rope_in_every_layer_is_another_model():
    """The same spec with RoPE in the 4th layer too is > 1e-3 off: the NoPE layer is seen."""
    hf = hf_model()
    text = (graphspec.SPECS_DIR / "smollm3_3b.yaml").read_text().replace(
        "pattern(causal * 3, causal(pos=none))", "causal")
    graph, net, _ = ref.generated(_load_text(text, SMALL_SET))
    assert ref.hf_logits_error(hf, net, graph, ids(24)) > 1e-3


def _load_text(text, overrides):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "s.yaml").write_text(text)
        return graphspec.load(Path(d) / "s.yaml", overrides)


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


def test_published_shape_imports_to_the_bundled_spec(tmp_path):
    """SmolLM3-3B's config (legacy rope_theta, no_rope_layers written out) -> the bundled spec's IR
    node for node; exported back, the same sizes, RoPE base and no_rope_layers."""
    from graphspec.interchange.hf_export import to_hf_config

    m, text = imported(tmp_path, SMOLLM3_3B)
    assert "  attention: pattern(causal * 3, causal(pos=none))" in text.splitlines()
    assert "embed: tokens(vocab, dim=d, pos=rope(5000000, max_len=65536))" in text.splitlines()
    bundled = graphspec.load("smollm3_3b")
    assert ir_lines(m) == ir_lines(bundled) and m.params() == bundled.params()
    out = to_hf_config(bundled)
    assert out["model_type"] == "smollm3" and out["architectures"] == ["SmolLM3ForCausalLM"]
    assert out["rope_parameters"] == {"rope_theta": 5_000_000.0, "rope_type": "default"}
    shared = {k for k in SMOLLM3_3B if k in out}
    assert len(shared) >= 13 and {k: SMOLLM3_3B[k] for k in shared} == {k: out[k] for k in shared}


CONFIGS = {  # small SmolLM3 configs beside SMALL: the interval rule, a list with no repeating run, biases untied
    "every-2nd": dict(no_rope_layer_interval=2),
    "list": dict(no_rope_layers=[0, 1, 1, 0]),
    "biases-untied": dict(num_hidden_layers=3, no_rope_layer_interval=3, attention_bias=True, mlp_bias=True,
                          tie_word_embeddings=False, num_key_value_heads=4),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_imported_small_config_computes_smollm3_logits(tmp_path, case):
    hf = hf_model(**CONFIGS[case])
    m, text = imported(tmp_path, hf.config)
    assert m.params() == ref.n_params(hf)
    graph, net, _ = ref.generated(m, "default")
    assert ref.hf_logits_error(hf, net, graph, ids()) < RTOL
    nope = [i for i, x in enumerate(hf.config.no_rope_layers) if not x]
    assert text.count("causal(pos=none)") == (1 if "pattern(" in text else len(nope)), text


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def test_export_with_weights_loads_in_transformers(tmp_path):
    """export --format hf --weights of the bundled spec at a small size: SmolLM3ForCausalLM.from_pretrained
    loads every tensor (tied head: no lm_head.weight) and computes the generated module's logits."""
    from safetensors.torch import save_file

    m = graphspec.load("smollm3_3b", SMALL_SET)
    _, net, _ = ref.generated(m, "none")
    ref.perturbed(net, seed=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    sets = [a for s in SMALL_SET for a in ("--set", s)]
    r = cli("export", "smollm3_3b", "--format", "hf", "-o", tmp_path / "hf", "--weights", tmp_path / "w.safetensors",
            *sets)
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["no_rope_layers"] == [1, 1, 1, 0] and cfg["no_rope_layer_interval"] == 4
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True,
                                                                 attn_implementation="eager")
    assert type(hf).__name__ == "SmolLM3ForCausalLM" and not info["missing_keys"] and not info["unexpected_keys"]
    assert ref.n_params(hf) == m.params()
    with torch.no_grad():
        assert ref.rel_err(net(ids()), hf.eval()(input_ids=ids()).logits) < RTOL


BAD = [  # (change to SmolLM3-3B's config, the words the message must hold)
    ({"no_rope_layers": [1, 1, 0]}, "option no_rope_layers = [1, 1, 0] is not expressible"),
    ({"no_rope_layers": [1, 1, 1, 2] * 9}, "a 1 (RoPE) or 0 (no positions) for each of the 36 layers"),
    ({"use_sliding_window": True, "sliding_window": 4096}, "option use_sliding_window = true"),
    ({"layer_types": ["sliding_attention"] * 36}, "option layer_types = "),
    ({"no_rope_layer_interval": 0}, "no_rope_layer_interval must be"),
]


@pytest.mark.parametrize("change,words", BAD, ids=[w[:30] for _, w in BAD])
def test_unexpressible_configs_exit_2_naming_the_option(tmp_path, change, words):
    text = json.dumps({**SMOLLM3_3B, **change}, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = cli("import", tmp_path / "config.json", "-o", tmp_path / "s.yaml")
    assert r.exit_code == 2, r.output
    key = next(iter(change))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln)
    assert f"config.json:{line}:3: error: " in r.output and words in r.output, r.output
    assert not (tmp_path / "s.yaml").exists()


def test_export_refuses_a_layer_smollm3_cannot_hold(tmp_path):
    """A NoPE layer beside a sliding one: SmolLM3's config has no per-layer window for RoPE layers."""
    r = cli("export", "smollm3_3b", "--format", "hf", "-o", tmp_path / "hf", "--set", "L=4",
            "--set", "decoder.attention=pattern(sliding(8), causal(pos=none))")
    assert r.exit_code == 2, r.output
    assert "SmolLM3 config holds causal layers" in r.output
