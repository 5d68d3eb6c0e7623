"""DeepSeek's multi-head latent attention (`qkv: mla(...)`, graphspec/vocab/mla.py) and
specs/deepseek_v2_lite.yaml against Hugging Face's DeepseekV2 / DeepseekV3 (transformers 5).

Small configs with random weights (no downloads), every parameter perturbed: DeepSeek-V2-Lite's
layout (no query latent, a dense first layer, 8 routed experts top 2 without renormalisation plus
2 shared), DeepSeek-V2 with a query latent (q_lora_rank) under YaRN (its mscale² on the softmax
scale), and DeepSeek-V3's attention (dense layers only; its router is not MLA's business) with
rope_interleave true and false. graphspec.weights maps HF's state dict in (strict, the `model.`
prefix only); logits agree to 1e-5 relative in fp32 without passes and with the default
pipeline, and through the IR interpreter. The bundled spec's parameters equal
DeepseekV2ForCausalLM on the meta device to the unit; MACs equal FlopCounterMode / 2 with eager
attention: the full-size attention and dense layers on meta at N = 128, the MoE layers on a
small real config (routing needs values)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from torch.utils.flop_counter import FlopCounterMode

import graphspec
from graphspec.spec import SpecError

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)

HERE = Path(__file__).parent

RTOL = 1e-5

# DeepSeek-V2-Lite's published config (arXiv:2405.04434, Appendix B), as transformers 5 keywords: every
# value is the released config.json's (tests/reference_hf.py PUBLISHED_CONFIGS['deepseek_v2_lite'], which
# names the public copies it was checked against), its rope_scaling moved into rope_parameters
LITE = dict(vocab_size=102400, hidden_size=2048, intermediate_size=10944, moe_intermediate_size=1408,
            num_hidden_layers=27, num_attention_heads=16, num_key_value_heads=16, kv_lora_rank=512, q_lora_rank=None,
            qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, n_routed_experts=64, num_experts_per_tok=6,
            n_shared_experts=2, first_k_dense_replace=1, routed_scaling_factor=1.0, topk_method="greedy",
            norm_topk_prob=False, rms_norm_eps=1e-6, tie_word_embeddings=False, max_position_embeddings=163840,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0,
                             "original_max_position_embeddings": 4096, "beta_fast": 32.0, "beta_slow": 1.0,
                             "mscale": 0.707, "mscale_all_dim": 0.707})
# The same layout, small: dim 64, 4 heads, latent 32, nope 16 + rope 8 per head, values 12
SMALL = dict(LITE, vocab_size=120, hidden_size=64, intermediate_size=96, moe_intermediate_size=24, num_hidden_layers=3,
             num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
             v_head_dim=12, n_routed_experts=8, num_experts_per_tok=2)
SMALL_SET = ["vocab=120", "d=64", "L=3", "h=4", "kv_rank=32", "rope_dim=8", "nope_dim=16", "v_dim=12", "d_ff=96",
             "expert_ff=24", "experts=8", "top_k=2", "seq_len=12"]
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
        "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707}

Q_LATENT = """\
name: mla_q_latent
names: hf
vars: interleaved=true
input: tokens(12)
embed: tokens(120, dim=64, pos=rope(10000, interleaved=interleaved, max_len=64, scaling=SCALING))
decoder×2:
  dim: 64
  heads: 4
  qkv: mla(kv_rank=32, rope_dim=8, nope_dim=16, v_dim=12, q_rank=24)
  norm: rms_norm(1e-6)
  mlp: glu(96, silu)
  bias: false
  final_norm: true
head: lm(tied=false)
"""


def hf_model(cls: str, cfg_cls: str, device: str | None = None, **cfg):
    config = getattr(transformers, cfg_cls)(**cfg, attn_implementation="eager", experts_implementation="eager")
    if device == "meta":
        with torch.device("meta"):
            return getattr(transformers, cls)(config).eval()
    return hf_ref.random_hf(getattr(transformers, cls), config)


def small_lite():
    return hf_model("DeepseekV2ForCausalLM", "DeepseekV2Config", **SMALL)


def ids(batch=2, seed=2):
    return torch.randint(0, 120, (batch, 12), generator=torch.Generator().manual_seed(seed))


def q_latent_spec(tmp_path, scaling="none", interleaved=True):
    p = tmp_path / "mla_q_latent.yaml"
    p.write_text(Q_LATENT.replace("SCALING", scaling), encoding="utf-8")
    return graphspec.load(p, [f"interleaved={str(interleaved).lower()}"])


@pytest.mark.parametrize("passes", ["none", "default"])
def test_deepseek_v2_lite_layout_computes_hugging_faces_logits(passes):
    """With the released YaRN: factor 40 from 4096 positions, softmax scale 1.5896/√24."""
    hf = small_lite()
    m = graphspec.load("deepseek_v2_lite", SMALL_SET)
    graph, net, _ = hf_ref.generated(m, passes)
    assert m.params() == hf_ref.n_params(hf) == 173_600
    scale = next(n for n in m.graph if n.op == "scale").a["k"]
    assert scale == pytest.approx(hf.model.layers[0].self_attn.scaling) == pytest.approx(1.5896 / 24**0.5, rel=1e-4)
    if passes != "none":  # the core fuses; q_proj and kv_a_proj_with_mqa stay apart (no qkv pattern)
        assert graph["layers.0.self_attn.attention"].op == "attention"
        assert "layers.0.self_attn.kv_a_proj_with_mqa" in graph and "layers.0.self_attn.qkv_proj" not in graph
    assert hf_ref.hf_logits_error(hf, net, graph, ids()) < RTOL  # family from model_type deepseek_v2: llama's names
    assert hf_ref.round_trip_mismatches(net, graph, "llama", hf) == []


def test_interpreter_computes_hugging_faces_logits():
    hf = small_lite()
    m = graphspec.load("deepseek_v2_lite", SMALL_SET)
    assert hf_ref.hf_interpreter_error(hf, m.graph, ids(1, seed=3), "llama") < RTOL


@pytest.mark.parametrize("scaling", ["none", "yarn"])
def test_query_latent_and_yarn_mscale(tmp_path, scaling):
    """q_lora_rank (q_a_proj -> q_a_layernorm -> q_b_proj) and YaRN with DeepSeek's mscale_all_dim,
    whose mscale² multiplies the softmax scale (4× from 16 positions: 1.0138² = 1.0277)."""
    rope = YARN if scaling == "yarn" else {"rope_type": "default", "rope_theta": 10000.0}
    hf = hf_model("DeepseekV2ForCausalLM", "DeepseekV2Config", **dict(
        SMALL, num_hidden_layers=2, q_lora_rank=24, first_k_dense_replace=2, rope_parameters=rope))
    yarn = "yarn(4, original=16, beta_fast=32, beta_slow=1, mscale=0.707, mscale_all_dim=0.707)"
    m = q_latent_spec(tmp_path, yarn if scaling == "yarn" else "none")
    scale = [n for n in m.graph if n.op == "scale"][0].a["k"]
    assert scale == pytest.approx(hf.model.layers[0].self_attn.scaling, rel=1e-12)
    graph, net, _ = hf_ref.generated(m, "default")
    assert hf_ref.hf_logits_error(hf, net, graph, ids(), "llama") < RTOL


@pytest.mark.parametrize("interleave", [True, False])
def test_deepseek_v3_attention(tmp_path, interleave):
    """DeepSeek-V3's attention is V2's with rope_interleave: true rotates pairs (x0, x1) as V2
    does (it returns them de-interleaved, which permutes q's and k's rope dims alike and leaves
    the scores as they are: graphspec's rope(interleaved=true)), false rotates halves as Llama."""
    hf = hf_model("DeepseekV3ForCausalLM", "DeepseekV3Config", vocab_size=120, hidden_size=64,
                  intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  kv_lora_rank=32, q_lora_rank=24, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12,
                  first_k_dense_replace=2, rope_interleave=interleave, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  max_position_embeddings=64, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    graph, net, _ = hf_ref.generated(q_latent_spec(tmp_path, interleaved=interleave), "none")
    assert hf_ref.hf_logits_error(hf, net, graph, ids()) < RTOL


def flop_counted_macs(model, N: int) -> int:
    x = torch.zeros(1, N, dtype=torch.long, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=x)
    return fc.get_total_flops() // 2


def test_bundled_params_equal_hugging_face_on_meta():
    """15,706,484,224 (paper: 15.7B); active: all but 58 of 64 routed experts in 26 layers."""
    m = graphspec.load("deepseek_v2_lite")
    hf = hf_model("DeepseekV2ForCausalLM", "DeepseekV2Config", "meta", **LITE)
    n = hf_ref.n_params(hf)
    experts = sum(p.numel() for k, p in hf.named_parameters() if ".mlp.experts." in k)
    assert experts == 26 * 64 * 3 * 2048 * 1408
    assert m.params() == n == 15_706_484_224 == m.spec.expect["params"]
    assert m.active_params() == n - experts * 58 // 64 == 2_661_150_208 == m.spec.expect["active_params"]


def test_bundled_attention_and_dense_macs_equal_flop_counter_on_meta():
    """Full size at N = 128 with every layer dense (meta tensors cannot route): MLA's projections,
    QKᵀ over 192 dims and ·V over 128, the dense SwiGLU and the head."""
    hf = hf_model("DeepseekV2ForCausalLM", "DeepseekV2Config", "meta", **dict(LITE, first_k_dense_replace=27))
    dense = graphspec.load("deepseek_v2_lite", ["dense=27"])
    per_token = 27 * (2048 * 3072 + 2048 * 576 + 512 * 4096 + 2048 * 2048 + 3 * 2048 * 10944) + 2048 * 102400
    assert dense.macs() == flop_counted_macs(hf, 128) == 128 * per_token + 27 * 16 * 128**2 * (192 + 128)


def test_moe_macs_equal_flop_counter_and_the_bundled_figure():
    """The MoE layers on a small real config (each token in exactly top_k experts), then the
    bundled figure: 316,032,417,792 at N = 128."""
    hf = hf_model("DeepseekV2ForCausalLM", "DeepseekV2Config", **dict(SMALL, vocab_size=500))
    m = graphspec.load("deepseek_v2_lite", [*SMALL_SET[1:-1], "vocab=500", "seq_len=20"])
    attn = 64 * 96 + 64 * 40 + 32 * 112 + 48 * 64
    moe = 64 * 8 + 2 * 3 * 64 * 24 + 3 * 64 * 48  # router, 2 of 8 experts, 2 shared experts as one
    per_token = 3 * attn + 3 * 64 * 96 + 2 * moe + 64 * 500
    assert m.macs() == flop_counted_macs(hf, 20) == 20 * per_token + 3 * 4 * 20**2 * (24 + 12)
    full = graphspec.load("deepseek_v2_lite")
    moe = 2048 * 64 + 6 * 3 * 2048 * 1408 + 3 * 2048 * 2816
    dense = 3 * 2048 * 10944
    attn = 2048 * 3072 + 2048 * 576 + 512 * 4096 + 2048 * 2048
    want = 128 * (27 * attn + dense + 26 * moe + 2048 * 102400) + 27 * 16 * 128**2 * 320
    assert full.macs() == want == 316_032_417_792 == full.spec.expect["macs"]


def test_generated_code_reads_like_deepseek_v2(tmp_path):
    _, _, src = hf_ref.generated(graphspec.load("deepseek_v2_lite", SMALL_SET), "none")
    for piece in ("class LatentAttention(nn.Module):", "self.kv_a_proj_with_mqa = nn.Linear(",
                  "self.kv_a_layernorm = nn.RMSNorm(", "self.kv_b_proj = nn.Linear(", "self.o_proj = nn.Linear(48,",
                  "q_nope, q_pe = q.split([16, 8], dim=-1)",
                  "compressed_kv, k_pe = self.kv_a_proj_with_mqa(x).split([32, 8], dim=-1)",
                  "k_nope, v = kv.split([16, 12], dim=-1)", "k_pe = k_pe.unflatten(-1, (1, -1))",
                  'q_pe, 10000.0, 8, interleaved=True, scaling=("yarn", 40.0, 4096, 32.0, 1.0, 1.0, True)',
                  "q = torch.cat([q_nope, q_rot], dim=-1)", "k = torch.cat([k_nope, k_pe], dim=-1)",
                  "self.mlp = MoE(dim, experts=8, top_k=2) if moe else SwiGLU(dim, hidden_features=96)",
                  "Block(dim=64, num_heads=4, moe=i >= 1)", "return x + self.mlp(self.post_attention_layernorm(x))"):
        assert piece in src, piece
    f = tmp_path / "deepseek_v2_lite_small.py"
    f.write_text(src, encoding="utf-8")
    from test_codegen import ruff

    r = ruff(f)
    assert r.returncode == 0, r.stdout + r.stderr


def test_docs_example_counts_what_its_comment_says(tmp_path):
    text = (HERE.parent / "docs" / "spec_dsl.md").read_text(encoding="utf-8")
    block = next(b for b in text.split("```yaml\n")[1:] if b.startswith("name: mla_like"))
    p = tmp_path / "mla_like.yaml"
    p.write_text(block.split("```")[0], encoding="utf-8")
    m = graphspec.load(p)
    assert (m.params(), m.active_params()) == (m.spec.expect["params"], m.spec.expect["active_params"])
    assert m.params() == 41_632 + 2 * 79_008 + 2 * 6_400 + 64


def test_onnx_matches_eager():
    """ONNX Attention-23 takes MLA's 24-dim q, k and 12-dim v as they are (default passes)."""
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx
    from graphspec.backends import weights
    from graphspec.backends.torch import run_eager

    from graphspec.passes import run_pipeline

    m = graphspec.load("deepseek_v2_lite", [*SMALL_SET, "batch=2"])
    g, _ = run_pipeline(m.graph, "default", echo=lambda s: None)
    params, x = weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)
    (ref,), (got,) = run_eager(g, params, x, spec=m.spec), gx.run(gx.export(g, params), x)
    assert abs(got - ref).max() <= 1e-4 * abs(ref).max()


def test_import_weights_reads_a_saved_deepseek_v2_checkpoint(tmp_path):
    """save_pretrained's files (one tensor per expert) -> `graphspec import-weights` (model_type
    deepseek_v2: Llama's names) -> the generated module computes HF's logits."""
    from safetensors.torch import load_file

    hf = small_lite()
    hf.save_pretrained(tmp_path / "hf")
    sets = [x for s in SMALL_SET for x in ("--set", s)]
    r = CliRunner().invoke(main, ["import-weights", "deepseek_v2_lite", str(tmp_path / "hf"), "-o",
                                  str(tmp_path / "w.safetensors"), *sets])
    assert r.exit_code == 0, r.output
    _, net, _ = hf_ref.generated(graphspec.load("deepseek_v2_lite", SMALL_SET))
    net.load_state_dict(load_file(tmp_path / "w.safetensors"), strict=True)
    with torch.no_grad():
        assert hf_ref.rel_err(net(ids()), hf(input_ids=ids()).logits) < RTOL


@pytest.mark.parametrize("override", [[], ["--convention", "unmasked"], ["--passes", "default"],
                                      ["--set", "decoder.qkv=mla(kv_rank=512, rope_dim=64, nope_dim=128, v_dim=128, q_rank=1536)"]])
def test_formulas_check_mla_as_an_identity(override):
    """`graphspec flops --formulas`: Ω(MLA) of DeepSeek-V2 §2.1 per layer equals the IR's MACs
    (dense: 5120·N² + 13,762,560·N per sample; the kept pairs under `unmasked`; with a query latent)."""
    r = CliRunner().invoke(main, ["flops", "deepseek_v2_lite", "--formulas", *override])
    assert r.exit_code == 0, r.output
    assert "Ω(MLA" in r.output and "all formula checks are identities" in r.output


def test_qkv_none_is_the_three_linears():
    m = graphspec.load("deepseek_v2_lite", [*SMALL_SET, "decoder.qkv=none"])
    assert "layers.0.self_attn.k_proj" in m.graph and "layers.0.self_attn.kv_b_proj" not in m.graph


def test_first_k_and_per_layer_lists_build_the_same_layers():
    a = graphspec.load("deepseek_v2_lite", SMALL_SET)
    moe = "moe(experts, top_k, expert=glu(expert_ff, silu), shared=shared, normalize=false)"
    b = graphspec.load("deepseek_v2_lite", [*SMALL_SET, f"decoder.mlp=['glu(d_ff, silu)', '{moe}', '{moe}']"])
    assert [(n.name, n.op, n.attrs) for n in a.graph] == [(n.name, n.op, n.attrs) for n in b.graph]


# (--set override, the message, the fix); each is located at its --set and exits 2
BAD = [
    ("decoder.qkv=mla(kv_rank=512, rope_dim=63, nope_dim=128, v_dim=128)", "mla(): rope_dim 63 is odd",
     "use an even rope_dim"),
    ("decoder.qkv=mla(kv_rank=0, rope_dim=64, nope_dim=128, v_dim=128)",
     "mla() argument `kv_rank` must be > 0, got 0", "with kv_rank > 0"),
    ("decoder.qkv=mla(kv_rank=512, rope_dim=64, nope_dim=128)", "mla() needs `v_dim`",
     "write mla(kv_rank, rope_dim, nope_dim, v_dim, q_rank=none"),
    ("decoder.kv_heads=4", "`kv_heads:` does not apply to `qkv: mla(...)`", "remove kv_heads"),
    ("decoder.qkv=gqa", "unknown q/k/v projection 'gqa'", "use one of mla"),
    ("decoder.mlp=['glu(64, silu)', 'glu(64, silu)']", "the mlp list has 2 entries for 27 blocks",
     "give one MLP per block (27)"),
]


@pytest.mark.parametrize("override,message,fix", BAD, ids=[b[1][:24] for b in BAD])
def test_bad_mla_arguments_are_located_errors(override, message, fix):
    with pytest.raises(SpecError) as e:
        graphspec.load("deepseek_v2_lite", [override])
    text = str(e.value)
    assert text.startswith(f"--set {override}"[:40]) and ":1:1: error: " in text, text
    assert message in text and fix in text.split("fix: ", 1)[1], text


def test_first_k_beyond_the_stack_exits_2_at_its_line():
    r = CliRunner().invoke(main, ["flops", "deepseek_v2_lite", "--set", "dense=30"])
    assert r.exit_code == 2, r.output
    line = next(i for i, t in enumerate((graphspec.SPECS_DIR / "deepseek_v2_lite.yaml").read_text().splitlines(), 1)
                if t.startswith("  mlp: first("))
    assert f"deepseek_v2_lite.yaml:{line}:8: error: first(30, ...) asks for 30 dense blocks, but the stack has 27" in r.output
    assert "fix: use k ≤ 27" in r.output and "Traceback" not in r.output
