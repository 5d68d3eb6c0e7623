"""Llama 4's text model (specs/llama4_scout.yaml: chunked attention, the NoPE layers' temperature,
the L2 q/k norm, interleaved llama3-scaled RoPE, experts weighting their inputs and a shared
expert) against Hugging Face's Llama4ForCausalLM (transformers 5, modeling_llama4.py).

Numerics on a small config with random weights, every parameter perturbed, eager attention and
chunk 4 / floor_scale 3 / attn_scale 1 so that at N = 12 three chunks are cut and the temperature
reaches 1 + ln 5: graphspec.weights' llama4 family maps HF's state dict in (strict) and back (bit
for bit); the generated module (no passes / default passes), the IR interpreter, torch.fx and
ONNX compute HF's logits, and dropping any one of those constructs makes them differ. Counts:
the bundled Scout and a Maverick spec (128 experts, MoE every other layer) equal
Llama4ForCausalLM on the meta device to the unit; MACs equal FlopCounterMode / 2 less what HF
computes for the experts a token does not use (its Llama4TextMoe runs every expert on every
token, the input scaled by zero). Interchange: Llama4TextConfig's defaults and Scout's released
text_config import (node for node the bundled spec), exports load back in transformers, and
what graphspec cannot express exits 2 naming the option."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from torch.utils.flop_counter import FlopCounterMode

import graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)

HERE = Path(__file__).parent
RTOL = 1e-5
LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
# meta-llama/Llama-4-Scout-17B-16E, config.json's text_config (as released with transformers 4.51; public
# copies of the hub file). attn_temperature_tuning is 4 there: HF tests its truth.
SCOUT_TEXT = {
    "attention_bias": False, "attention_chunk_size": 8192, "attention_dropout": 0.0, "attn_scale": 0.1,
    "attn_temperature_tuning": 4, "bos_token_id": 200000, "eos_token_id": [200001, 200007, 200008],
    "floor_scale": 8192, "for_llm_compressor": False, "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120,
    "initializer_range": 0.02, "interleave_moe_layer_step": 1, "intermediate_size": 8192,
    "intermediate_size_mlp": 16384, "max_position_embeddings": 262144, "model_type": "llama4_text",
    "moe_layers": list(range(48)), "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(48)],
    "num_attention_heads": 40, "num_experts_per_tok": 1, "num_hidden_layers": 48, "num_key_value_heads": 8,
    "num_local_experts": 16, "output_router_logits": False, "pad_token_id": 200018, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "router_aux_loss_coef": 0.001, "router_jitter_noise": 0.0, "torch_dtype": "bfloat16",
    "use_cache": True, "use_qk_norm": True, "vocab_size": 202048}
SCOUT = dict(vocab_size=202048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16384,
             num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, head_dim=128, num_local_experts=16,
             num_experts_per_tok=1, interleave_moe_layer_step=1, rms_norm_eps=1e-5, tie_word_embeddings=False,
             max_position_embeddings=262144, rope_parameters=LLAMA3)
# Llama-4-Maverick-17B-128E: 128 experts in every other layer (interleave_moe_layer_step 2), the others
# dense SwiGLUs of intermediate_size_mlp 16384, no q/k norm, RoPE unscaled (its released text_config)
MAVERICK = dict(SCOUT, num_local_experts=128, interleave_moe_layer_step=2, use_qk_norm=False,
                max_position_embeddings=1048576, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
MAVERICK_SPEC = """\
name: llama4_maverick
names: hf
vars: vocab=202048, d=5120, L=48, h=40, kv=8, hd=128, expert_ff=8192, d_ff=16384, experts=128, seq_len=128
input: tokens(seq_len)
embed: tokens(vocab, dim=d, pos=rope(500000, interleaved=true, max_len=1048576))
decoder×L:
  dim: d
  heads: h
  kv_heads: kv
  head_dim: hd
  attention: pattern(chunked(8192) * 3, causal(pos=temperature(8192, 0.1)))
  norm: rms_norm(1e-5)
  mlp: pattern(glu(d_ff, silu), moe(experts, 1, expert=glu(expert_ff, silu), shared=1, normalize=false, router=sigmoid(bias=false), weigh=input))
  bias: false
  final_norm: true
head: lm(tied=false)
"""
# The bundled spec, small: 4 layers (3 chunked RoPE layers, 1 NoPE), 4 experts, chunks of 4, floor_scale 3,
# attn_scale 1 (Scout's 0.1 moves these logits by 7e-4 only)
SMALL_SET = ["vocab=120", "d=32", "L=4", "h=4", "kv=2", "hd=8", "expert_ff=24", "experts=4", "chunk=4", "floor=3",
             "attn_scale=1", "seq_len=12"]
SMALL = dict(SCOUT, vocab_size=120, hidden_size=32, intermediate_size=24, intermediate_size_mlp=48,
             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_local_experts=4,
             attention_chunk_size=4, floor_scale=3, attn_scale=1.0)


def config(**kw):
    return transformers.Llama4TextConfig(**kw, attn_implementation="eager")


def small_hf(**kw):
    return hf_ref.random_hf(transformers.Llama4ForCausalLM, config(**{**SMALL, **kw}))


def meta_hf(cfg: dict):
    return hf_ref.meta(transformers.Llama4ForCausalLM, config(**cfg)).eval()


def ids(batch=2, seed=2, vocab=120, n=12):
    return torch.randint(0, vocab, (batch, n), generator=torch.Generator().manual_seed(seed))


def small_spec():
    return graphspec.load("llama4_scout", SMALL_SET)


def variant(tmp_path, old: str, new: str, name="variant"):
    """The bundled spec with one line changed, small."""
    lines = (graphspec.SPECS_DIR / "llama4_scout.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    spec = [i for i, ln in enumerate(lines) if old in ln and not ln.startswith("#")]  # not the header's
    assert len(spec) == 1, old
    lines[spec[0]] = lines[spec[0]].replace(old, new)
    p = tmp_path / f"{name}.yaml"
    p.write_text("".join(lines), encoding="utf-8")
    return graphspec.load(p, SMALL_SET)


def flop_counted_macs(model, N: int) -> int:
    x = torch.zeros(1, N, dtype=torch.long, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=x)
    return fc.get_total_flops() // 2


# -- numerics ---------------------------------------------------------------------------------
def test_the_small_config_exercises_chunks_and_temperature():
    """HF's own model at N = 12: chunks of 4 and floor_scale 3 change its logits (else the numerics
    below would not test them)."""
    x = ids()
    with torch.no_grad():
        want = small_hf()(input_ids=x).logits
        for change in ({"attention_chunk_size": 64}, {"attn_temperature_tuning": False}):
            assert hf_ref.rel_err(small_hf(**change)(input_ids=x).logits, want) > 1e-3, change


@pytest.mark.parametrize("passes", ["none", "default"])
def test_small_scout_computes_hugging_faces_logits(passes):
    hf = small_hf()
    m = small_spec()
    graph, net, _ = hf_ref.generated(m, passes)
    assert m.params() == hf_ref.n_params(hf) == 66_848
    if passes != "none":  # q|k|v fuse (through the L2 norm and the temperature), the cores fuse with their masks
        assert graph["layers.0.self_attn.qkv_proj"].op == "linear"
        assert graph["layers.0.self_attn.attention"].a["chunk"] == 4
        assert graph["layers.3.self_attn.attention"].a["causal"] is True
    assert hf_ref.hf_logits_error(hf, net, graph, ids()) < RTOL  # family llama4, from model_type llama4_text
    assert hf_ref.round_trip_mismatches(net, graph, "llama4", hf) == []


def test_interpreter_and_torch_fx_compute_hugging_faces_logits():
    from graphspec.codegen.fx import to_fx

    from graphspec.passes import run_pipeline
    from graphspec.weights import to_graphspec

    hf, m = small_hf(), small_spec()
    x = ids(1, seed=3)
    assert hf_ref.hf_interpreter_error(hf, m.graph, x) < RTOL
    for g in (m.graph, run_pipeline(m.graph, "default", echo=lambda s: None)[0]):
        gm = to_fx(g).eval()
        gm.load_state_dict(to_graphspec(hf, g), strict=True)
        with torch.no_grad():
            assert hf_ref.rel_err(gm(x), hf(input_ids=x).logits) < RTOL


def test_onnx_computes_hugging_faces_logits():
    """ONNX (onnxruntime) after the default passes: Attention-23 with the chunked band as an
    additive mask, the temperature a constant (N, 1) table, every expert on every token."""
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    from graphspec.passes import run_pipeline
    from graphspec.weights import to_graphspec

    hf, m = small_hf(), small_spec()
    g, _ = run_pipeline(m.graph, "default", echo=lambda s: None)
    params = {k: v.numpy() for k, v in to_graphspec(hf, g).items()}
    x = ids(1, seed=4)
    (got,) = gx.run(gx.export(g, params), {g.inputs[0].name: x.numpy()})
    with torch.no_grad():
        assert hf_ref.rel_err(torch.from_numpy(got), hf(input_ids=x).logits) < 1e-4


def test_tvm_llvm_computes_hugging_faces_logits():
    """Apache TVM (Relax, llvm) after the default passes: the chunked band, the temperature table
    and the L2 norm as Relax ops, every expert on every token with its input weighted."""
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    from graphspec.passes import run_pipeline
    from graphspec.weights import to_graphspec

    hf, m = small_hf(), small_spec()
    g, _ = run_pipeline(m.graph, "default", echo=lambda s: None)
    params = {k: v.numpy() for k, v in to_graphspec(hf, g).items()}
    low = gt.lower(g)
    ex, _ = gt.build(low, "llvm")
    x = ids(1, seed=5)
    (got,) = gt.Runner(ex, low.params, params)(x.numpy())
    with torch.no_grad():
        assert hf_ref.rel_err(torch.from_numpy(got), hf(input_ids=x).logits) < 1e-4


DROPPED = [  # each construct replaced by what graphspec had before it
    ("pattern(chunked(chunk) * 3,", "pattern(causal * 3,"),  # chunked attention -> causal
    ("causal(pos=temperature(floor, attn_scale))", "causal(pos=none)"),  # no temperature on the NoPE layers
    ("  qk_norm: l2", "  qk_norm: false"),  # no L2 norm of q and k
    (", weigh=input)", ")"),  # the router weight on the experts' outputs (Mixtral's)
    ("pos=rope(500000, interleaved=true,", "pos=rope(500000, interleaved=false,"),  # RoPE on halves
]


@pytest.mark.parametrize("old,new", DROPPED, ids=["chunked", "temperature", "l2_qk_norm", "weigh_input", "pairs"])
def test_each_construct_matters(tmp_path, old, new):
    hf = small_hf()
    graph, net, _ = hf_ref.generated(variant(tmp_path, old, new), "none")
    assert hf_ref.hf_logits_error(hf, net, graph, ids()) > 1e-3


def test_generated_code_reads_like_hugging_faces_llama4(tmp_path):
    _, _, src = hf_ref.generated(small_spec(), "default")
    for piece in ("def chunked_mask(attn, chunk: int):", "def attn_temperature(q, floor_scale: float, attn_scale: float):",
                  "class ChunkedAttention(nn.Module):", "class GlobalAttention(nn.Module):",
                  "GlobalAttention(dim, num_heads, kv_heads=2)\n            if global_attention\n            else ChunkedAttention(",
                  "Block(dim=32, num_heads=4, global_attention=i >= 3)", "q_norm = F.rms_norm(q, (8,), eps=1e-05)",
                  'interleaved=True, scaling=("llama3", 8.0, 1.0, 4.0, 8192)',
                  "chunked_mask(q_rot.new_zeros(q_rot.size(-2), k_rot.size(-2)), 4)",
                  "q_scaled = attn_temperature(q, 3.0, 1.0)", "is_causal=True",
                  'self.gate = TopKRouter(dim, experts, top_k, score="sigmoid", normalize=False)',
                  'Experts(experts, top_k, dim, 24, act="silu", gated=True, weigh="input")',
                  "h = h * weight.flatten()[order].unsqueeze(-1).to(h.dtype)",
                  "return self.experts(x, self.gate(x)) + self.shared_experts(x)",
                  "self.qkv_proj = nn.Linear(dim, 2 * dim, bias=False)"):
        assert piece in src, piece
    f = tmp_path / "llama4_small.py"
    f.write_text(src, encoding="utf-8")
    from test_codegen import ruff

    r = ruff(f)
    assert r.returncode == 0, r.stdout + r.stderr
    _, _, plain = hf_ref.generated(graphspec.load("mixtral_8x7b", ["vocab=100", "d=64", "L=2", "h=4", "kv=2",
                                                                   "d_ff=32", "experts=4", "top_k=2", "seq_len=16"]))
    assert not re.search(r"\bweigh\b", plain)  # Mixtral's generated Experts as before


# -- counts ----------------------------------------------------------------------------------
def test_bundled_scout_counts_equal_hugging_face_on_meta():
    """107,769,861,120 parameters (the model card's 109B holds the 1.9B vision encoder too); active:
    all but 15 of the 16 routed experts in every layer, 17,172,894,720 (17B). MACs at N = 128:
    FlopCounterMode / 2 on the full-size model (meta tensors: HF's experts run densely) counts the
    15 unused experts of each token too."""
    m = graphspec.load("llama4_scout")
    hf = meta_hf(SCOUT)
    n = hf_ref.n_params(hf)
    experts = sum(p.numel() for k, p in hf.named_parameters() if ".experts." in k)
    assert experts == 48 * 16 * 3 * 5120 * 8192
    assert m.params() == n == 107_769_861_120 == m.spec.expect["params"]
    assert m.active_params() == n - experts * 15 // 16 == 17_172_894_720 == m.spec.expect["active_params"]
    per_token = 48 * (2 * 5120**2 + 2 * 5120 * 1024 + 5120 * 16 + 2 * 3 * 5120 * 8192) + 5120 * 202_048
    want = 128 * per_token + 48 * 2 * 128**2 * 5120
    assert m.macs() == want == 2_073_705_840_640 == m.spec.expect["macs"]
    assert flop_counted_macs(hf, 128) == want + 48 * 128 * 15 * 3 * 5120 * 8192


def test_small_macs_equal_flop_counter_on_a_real_model():
    """Real tensors at N = 12 (the routing runs): the same identity, 4 layers of 3 unused experts."""
    m = small_spec()
    per_token = 4 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 32 * 4 + 2 * 3 * 32 * 24) + 32 * 120
    assert m.macs() == 12 * per_token + 4 * 2 * 12**2 * 32
    assert flop_counted_macs(small_hf(), 12) == m.macs() + 4 * 12 * 3 * 3 * 32 * 24


def test_maverick_counts_equal_hugging_face_on_meta(tmp_path):
    """Llama 4 Maverick: 400,711,848,960 parameters (model card: 400B), 17,184,691,200 active (17B):
    24 MoE layers of 128 experts, 24 dense SwiGLUs of 16384."""
    p = tmp_path / "llama4_maverick.yaml"
    p.write_text(MAVERICK_SPEC, encoding="utf-8")
    m = graphspec.load(p)
    hf = meta_hf(MAVERICK)
    n = hf_ref.n_params(hf)
    experts = sum(p.numel() for k, p in hf.named_parameters() if ".experts." in k)
    assert experts == 24 * 128 * 3 * 5120 * 8192
    assert m.params() == n == 400_711_848_960
    assert m.active_params() == n - experts * 127 // 128 == 17_184_691_200
    attn = 2 * 5120**2 + 2 * 5120 * 1024
    per_token = 48 * attn + 24 * 3 * 5120 * 16384 + 24 * (5120 * 128 + 2 * 3 * 5120 * 8192) + 5120 * 202_048
    assert m.macs() == 128 * per_token + 48 * 2 * 128**2 * 5120
    assert flop_counted_macs(hf, 128) == m.macs() + 24 * 128 * 127 * 3 * 5120 * 8192


def test_unmasked_convention_counts_the_chunks_pairs():
    """N = 12 in chunks of 4: 3 × 4·5/2 = 30 of the 144 pairs per head in a chunked layer, 78 in the
    causal one; `graphspec flops --formulas --convention unmasked` finds the chunked formula."""
    m = small_spec()
    dense, unmasked = m.macs(), m.macs("unmasked")
    assert dense - unmasked == 3 * 2 * 32 * (144 - 30) + 2 * 32 * (144 - 78)
    r = CliRunner().invoke(main, ["flops", "llama4_scout", "--formulas", "--convention", "unmasked",
                                  *[a for s in SMALL_SET for a in ("--set", s)]])
    assert r.exit_code == 0, r.output
    assert "Ω(chunked)" in r.output and "DIFFERS" not in r.output


# -- interchange -----------------------------------------------------------------------------
def imported(tmp_path, cfg: dict, name="imported"):
    text = json.dumps(cfg, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / f"{name}.yaml")])
    assert r.exit_code == 0, r.output
    return tmp_path / f"{name}.yaml"


def ir_lines(graph):
    return [re.sub(r"\s+#.*$", "", ln) for ln in str(graph).splitlines()[1:]]


def test_released_scout_text_config_imports_as_the_bundled_spec(tmp_path):
    p = imported(tmp_path, SCOUT_TEXT)
    text = p.read_text()
    assert "attention: pattern(chunked(chunk) * 3, causal(pos=temperature(8192, 0.1)))" in text
    assert "scaling=llama3(8, original=8192)" in text and "qk_norm: l2" in text
    assert ir_lines(graphspec.load(p).graph) == ir_lines(graphspec.load("llama4_scout").graph)


@pytest.mark.parametrize("case", ["defaults", "maverick"])
def test_imported_configs_have_hugging_faces_params(tmp_path, case):
    cfg = {"model_type": "llama4_text", "architectures": ["Llama4ForCausalLM"]}
    if case == "maverick":
        cfg.update({k: v for k, v in MAVERICK.items() if k != "rope_parameters"}, rope_theta=500000.0)
    m = graphspec.load(imported(tmp_path, cfg))
    want = transformers.Llama4TextConfig(**{k: v for k, v in cfg.items() if k not in ("model_type", "architectures")})
    assert m.params() == hf_ref.n_params(hf_ref.meta(transformers.Llama4ForCausalLM, want))


def test_imported_small_config_computes_hugging_faces_logits(tmp_path):
    """Layer options beside Scout's: MoE every other layer, no q/k norm, NoPE layers without the
    temperature, every 3rd layer NoPE, and chunked too (layer_types given). NB: layers of more than
    two kinds (chunked or not × RoPE or not) import and interpret, but codegen refuses a block
    attribute of more than two classes."""
    kw = dict(SMALL, num_hidden_layers=6, interleave_moe_layer_step=2, use_qk_norm=False, attn_temperature_tuning=False,
              no_rope_layer_interval=3, layer_types=["chunked_attention"] * 6)
    hf = small_hf(**kw)
    cfg = {**config(**kw).to_dict(), "architectures": ["Llama4ForCausalLM"]}
    text = imported(tmp_path, cfg).read_text()
    assert "mlp: pattern(glu(d_ff, silu), moe(" in text and "chunked(chunk, pos=none)" in text, text
    m = graphspec.load(tmp_path / "imported.yaml", ["seq_len=12"])
    graph, net, _ = hf_ref.generated(m, "default")
    assert hf_ref.hf_logits_error(hf, net, graph, ids()) < RTOL


def test_export_loads_in_transformers_with_the_bundled_params(tmp_path):
    r = CliRunner().invoke(main, ["export", "llama4_scout", "--format", "hf", "-o", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.output
    cfg = transformers.AutoConfig.from_pretrained(tmp_path / "hf")
    assert cfg.model_type == "llama4_text" and cfg.no_rope_layers == SCOUT_TEXT["no_rope_layers"]
    assert (cfg.attention_chunk_size, cfg.floor_scale, cfg.attn_scale, cfg.use_qk_norm) == (8192, 8192, 0.1, True)
    with torch.device("meta"):
        hf = transformers.Llama4ForCausalLM(cfg)
    assert hf_ref.n_params(hf) == graphspec.load("llama4_scout").params()


def test_exported_weights_load_in_transformers_and_compute_its_logits(tmp_path):
    from safetensors.torch import save_file

    _, net, _ = hf_ref.generated(small_spec(), "default")
    hf_ref.perturbed(net)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    r = CliRunner().invoke(main, ["export", "llama4_scout", "--format", "hf", "-o", str(tmp_path / "hf"),
                                  "--weights", str(tmp_path / "w.safetensors"),
                                  *[a for s in SMALL_SET for a in ("--set", s)]])
    assert r.exit_code == 0, r.output
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", output_loading_info=True,
                                                                 attn_implementation="eager")
    assert type(hf).__name__ == "Llama4ForCausalLM" and not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert hf_ref.rel_err(net(ids()), hf.eval()(input_ids=ids()).logits) < RTOL


BAD_CONFIGS = [  # (change, the words the message must hold)
    ({"layer_types": ["sliding_attention"] * 48}, "layer_types must be a list of 48 entries"),
    ({"no_rope_layers": [2] * 48}, "no_rope_layers must be a list of at least 48 entries 0 or 1"),
    ({"attention_chunk_size": None}, "option attention_chunk_size = null"),
    ({"attn_temperature_tuning": "yes"}, "attn_temperature_tuning must be true, false or a count"),
    ({"floor_scale": 0}, "option floor_scale = 0"),
    ({"hidden_act": "gelu_fast"}, "option hidden_act = \"gelu_fast\""),
    ({"moe_layers": [0, 99]}, "moe_layers must be a list of layer indices below 48"),
    ({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "rope"),
    ({"attention_sink": True}, "option attention_sink = true is not known"),
]


@pytest.mark.parametrize("change,words", BAD_CONFIGS, ids=[next(iter(c)) for c, _ in BAD_CONFIGS])
def test_unexpressible_configs_exit_2_naming_the_option(tmp_path, change, words):
    cfg = {**SCOUT_TEXT, **change, **({"layer_types": ["chunked_attention"] * 48}
                                       if "attention_chunk_size" in change else {})}
    text = json.dumps(cfg, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2, r.output
    key = next(iter(change))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln)
    assert f"config.json:{line}:" in r.output and words in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "s.yaml").exists()


def test_export_refuses_what_llama4_cannot_hold(tmp_path):
    for change, words in (("decoder.attention=pattern(chunked(8192) * 3, chunked(4096))", "one attention_chunk_size"),
                          ("embed=tokens(vocab, dim=d, pos=rope(500000))", "interleaved pairs")):
        r = CliRunner().invoke(main, ["export", "llama4_scout", "--format", "hf", "-o", str(tmp_path / "hf"),
                                      "--set", change])
        assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output


# -- bad spec arguments ----------------------------------------------------------------------
BAD_SPECS = [
    ("pattern(chunked(chunk) * 3,", "pattern(chunked(0) * 3,", "chunked() argument `chunk` must be > 0"),
    ("pattern(chunked(chunk) * 3,", "pattern(chunked * 3,", "chunked() needs `chunk`"),
    ("temperature(floor, attn_scale)", "temperature(0, attn_scale)", "temperature() argument `floor` must be > 0"),
    ("temperature(floor, attn_scale)", "temperature(floor, -1)", "temperature() argument `scale` must be ≥ 0"),
    ("weigh=input", "weigh=inputs", "moe() argument `weigh` must be one of output, input"),
    ("qk_norm: l2", "qk_norm: l3", "qk_norm 'l3' is not one of true, false, head, all, l2"),
    ("expert=glu(expert_ff, silu)", "expert=clamped_swiglu(expert_ff)", "weigh=input scales the inputs of glu or mlp"),
]


@pytest.mark.parametrize("old,new,words", BAD_SPECS, ids=[w[:24] for _, _, w in BAD_SPECS])
def test_bad_arguments_are_located_errors(tmp_path, old, new, words):
    lines = (graphspec.SPECS_DIR / "llama4_scout.yaml").read_text(encoding="utf-8").splitlines()
    line = next(i for i, ln in enumerate(lines, 1) if old in ln and not ln.startswith("#"))  # not the header's
    lines[line - 1] = lines[line - 1].replace(old, new)
    p = tmp_path / "bad.yaml"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["flops", str(p)])
    assert r.exit_code == 2, r.output
    assert re.search(rf"bad\.yaml:{line}:\d+: error: ", r.output) and words in r.output, r.output
    assert "fix:" in r.output and "Traceback" not in r.output


def test_import_weights_reads_a_saved_llama4_checkpoint(tmp_path):
    """save_pretrained's files -> `graphspec import-weights` (model_type llama4_text: the llama4 weight
    family, experts transposed from (E, in, out)) -> the generated module computes HF's logits."""
    from safetensors.torch import load_file

    hf = small_hf()
    hf.save_pretrained(tmp_path / "hf")
    r = CliRunner().invoke(main, ["import-weights", "llama4_scout", str(tmp_path / "hf"), "-o",
                                  str(tmp_path / "w.safetensors"), *[a for s in SMALL_SET for a in ("--set", s)]])
    assert r.exit_code == 0, r.output
    _, net, _ = hf_ref.generated(small_spec())
    net.load_state_dict(load_file(tmp_path / "w.safetensors"), strict=True)
    with torch.no_grad():
        assert hf_ref.rel_err(net(ids()), hf(input_ids=ids()).logits) < RTOL


def test_released_multimodal_config_imports_its_language_model(tmp_path):
    """The released config.json (model_type llama4, Llama4ForConditionalGeneration): its text_config
    is the bundled spec node for node, the header says what is left out, and a bad key inside
    text_config is located at its own line."""
    full = {"architectures": ["Llama4ForConditionalGeneration"], "boi_token_index": 200080, "eoi_token_index": 200081,
            "image_token_index": 200092, "model_type": "llama4", "text_config": SCOUT_TEXT,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
            "vision_config": {"hidden_size": 1408, "model_type": "llama4_vision_model"}}
    p = imported(tmp_path, full)
    assert "the vision encoder, the projector and the image tokens are left out" in p.read_text()
    assert ir_lines(graphspec.load(p).graph) == ir_lines(graphspec.load("llama4_scout").graph)
    text = json.dumps({**full, "text_config": {**SCOUT_TEXT, "use_qk_norm": "yes"}}, indent=2)
    (tmp_path / "config.json").write_text(text)
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"use_qk_norm"' in ln)
    assert r.exit_code == 2 and f"config.json:{line}:" in r.output and "use_qk_norm must be true or false" in r.output


def test_weights_of_llama4_for_conditional_generation_map_in():
    """Llama4ForConditionalGeneration keeps the language model under `language_model.`: its text weights
    map into the generated module (the vision tower's are not read)."""
    from graphspec.weights import to_graphspec

    cfg = transformers.Llama4Config(text_config=config(**SMALL).to_dict(),
                                    vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, image_size=28, patch_size=14,
                                                       vision_output_dim=16, projector_input_dim=16,
                                                       projector_output_dim=16))
    torch.manual_seed(0)
    mm = hf_ref.perturbed(transformers.Llama4ForConditionalGeneration(cfg))
    graph, net, _ = hf_ref.generated(small_spec(), "none")
    net.load_state_dict(to_graphspec(mm, graph), strict=True)
    with torch.no_grad():
        assert hf_ref.rel_err(net(ids()), mm.language_model(input_ids=ids()).logits) < RTOL
