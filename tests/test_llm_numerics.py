"""The generated PyTorch module of every LLM family computes what Hugging Face computes.

Small configs of Llama (MHA), Mistral (GQA, a sliding window shorter than the sequence),
Mixtral (GQA + a mixture of 4 experts, top 2), Phi-2 (parallel block, LayerNorm, 40% partial
rotary, biases, untied head with a bias), Qwen3-MoE (per-head q/k RMSNorm, a head_dim that is
not dim/heads, a mixture of 4 experts, top 2) and OLMo 2 (q/k RMSNorm over all heads' dims, a
norm on each sub-layer's output inside the residual), HF models built from Config objects with
random weights (no downloads), every parameter perturbed; graphspec.weights maps the HF state dict
into the generated module (the names differ by the `model.` prefix only, Phi's `dense` and
`final_layernorm` aside) and back; logits agree to 1e-5 relative in fp32, with no passes and
with the default pipeline, and the IR interpreter agrees too.
"""

from __future__ import annotations

import pytest
import torch

import graphspec
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402

rel_err, hf_logits_error = hf_ref.rel_err, hf_ref.hf_logits_error
RTOL = 1e-5
SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
             tie_word_embeddings=False, attention_dropout=0.0)
# spec -> (HF model, config, extra config, --set overrides)
FAMILIES = {
    "llama2_7b": ("LlamaForCausalLM", "LlamaConfig", dict(num_key_value_heads=8, rms_norm_eps=1e-5),
                  ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "seq_len=12"]),
    "mistral_7b": ("MistralForCausalLM", "MistralConfig",
                   dict(num_key_value_heads=2, sliding_window=5, rms_norm_eps=1e-5),
                   ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "window=5", "seq_len=12"]),
    "mixtral_8x7b": ("MixtralForCausalLM", "MixtralConfig",
                     dict(num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, rms_norm_eps=1e-5,
                          router_jitter_noise=0.0, experts_implementation="eager"),
                     ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "experts=4", "top_k=2", "seq_len=12"]),
    "phi2": ("PhiForCausalLM", "PhiConfig",
             dict(hidden_size=80, intermediate_size=160, num_attention_heads=4, partial_rotary_factor=0.4,
                  layer_norm_eps=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, hidden_act="gelu_new"),
             ["vocab=120", "d=80", "d_ff=160", "L=2", "h=4", "rotary=0.4", "seq_len=12"]),
    "qwen3_30b_a3b": ("Qwen3MoeForCausalLM", "Qwen3MoeConfig",  # per-head q/k norms, head_dim 24 ≠ 64/4, MoE
                      dict(num_attention_heads=4, num_key_value_heads=2, head_dim=24, moe_intermediate_size=48,
                           num_experts=4, num_experts_per_tok=2, norm_topk_prob=True, rms_norm_eps=1e-6,
                           rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
                           experts_implementation="eager"),
                      ["vocab=120", "d=64", "L=2", "h=4", "kv=2", "hd=24", "d_ff=48", "experts=4", "top_k=2",
                       "seq_len=12"]),
    "olmo2_7b": ("Olmo2ForCausalLM", "Olmo2Config",  # q/k RMSNorm over all heads' dims, norms after each sub-layer
                 dict(num_key_value_heads=8, rms_norm_eps=1e-6, rope_parameters={"rope_type": "default",
                                                                                 "rope_theta": 500_000.0}),
                 ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "seq_len=12"]),
}
PASSES = ["none", "default"]


def hf_model(name: str):
    model_cls, cfg_cls, extra, _ = FAMILIES[name]
    cfg = getattr(transformers, cfg_cls)(**{**SMALL, **extra}, attn_implementation="eager")
    return hf_ref.random_hf(getattr(transformers, model_cls), cfg)


def weight_family(name: str) -> str:
    return "phi" if name == "phi2" else "llama"


def generated(name: str, passes: str):
    return hf_ref.generated(graphspec.load(name, FAMILIES[name][3]), passes)


@pytest.mark.parametrize("passes", PASSES)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_generated_module_matches_hugging_face(name, passes):
    hf = hf_model(name)
    graph, net, _ = generated(name, passes)
    if passes != "none":  # fuse_qkv packed q_proj|k_proj|v_proj (GQA: (h + 2·kv)·d rows) into qkv_proj
        assert "layers.0.self_attn.qkv_proj" in graph and "layers.0.self_attn.q_proj.weight" not in net.state_dict()
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(2))
    assert hf_logits_error(hf, net, graph, ids, weight_family(name)) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, weight_family(name), hf) == []


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_interpreter_matches_hugging_face(name):
    hf = hf_model(name)
    m = graphspec.load(name, FAMILIES[name][3])
    ids = torch.randint(0, 120, (1, 12), generator=torch.Generator().manual_seed(3))
    assert hf_ref.hf_interpreter_error(hf, m.graph, ids, weight_family(name)) < RTOL


def test_sliding_window_is_shorter_than_the_sequence():
    """The Mistral config must exercise the window: with window ≥ N it would equal causal."""
    hf = hf_model("mistral_7b")
    graph, net, _ = generated("mistral_7b", "none")
    net.load_state_dict(to_graphspec(hf, graph))
    m = graphspec.load("mistral_7b", FAMILIES["mistral_7b"][3][:-2] + ["window=12", "seq_len=12"])
    _, wide, _ = hf_ref.generated(m)
    wide.load_state_dict(net.state_dict())
    ids = torch.randint(0, 120, (1, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert rel_err(net(ids), wide(ids)) > 1e-3


def test_generated_llama_reads_like_hand_written_code():
    _, _, src = generated("llama2_7b", "none")
    for piece in ("nn.RMSNorm(", "apply_rotary(", "class SwiGLU", "self.layers = nn.ModuleList(",
                  "self.q_proj", "self.gate_proj", "self.input_layernorm", "self.post_attention_layernorm"):
        assert piece in src, piece
    _, _, src = generated("mixtral_8x7b", "none")
    assert "class Experts" in src and "class MoE" in src and "self.gate = TopKRouter(dim, experts, top_k)" in src
    _, _, src = generated("olmo2_7b", "default")  # q/k norms over all heads, on the fused projection's parts
    for piece in ('"""Transformer block: x = x + norm(attn(x)); x = x + norm(mlp(x))."""',
                  "self.q_norm = nn.RMSNorm(dim, eps=1e-06)", "q = self.q_norm(q).unflatten(-1, (self.num_heads, -1))",
                  "x = x + self.post_attention_layernorm(self.self_attn(x))"):
        assert piece in src, piece


QWEN3_LIKE = """\
name: qwen3_like
names: hf
input: tokens(12)
embed: tokens(120, dim=64, pos=rope(10000))
decoder×2:
  dim: 64
  heads: 4
  kv_heads: 2
  head_dim: 24
  qk_norm: true
  norm: rms_norm(1e-6)
  mlp: glu(96, silu)
  bias: false
  final_norm: true
head: lm(tied=true)
"""


@pytest.mark.parametrize("passes", PASSES)
def test_qk_norm_head_dim_and_tied_head_match_qwen3(tmp_path, passes):
    """A spec written in the DSL only (no bundled spec): Qwen3's per-head q/k RMSNorm, a head_dim
    (24) that is not dim/heads (16), GQA and a head tied to `embed_tokens`."""
    cfg = transformers.Qwen3Config(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=24, rms_norm_eps=1e-6,
                                   tie_word_embeddings=True, attn_implementation="eager")
    hf = hf_ref.random_hf(transformers.Qwen3ForCausalLM, cfg)
    (tmp_path / "q.yaml").write_text(QWEN3_LIKE)
    m = graphspec.load(tmp_path / "q.yaml")
    assert m.params() == sum(p.numel() for p in hf.parameters())
    graph, net, _ = hf_ref.generated(m, passes)
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(2))
    assert hf_logits_error(hf, net, graph, ids, "llama") < RTOL


def test_qk_norm_scopes(tmp_path):
    """`qk_norm: head` is `true` (Qwen3: each head's 24 dims); `all` (OLMo-2) norms q over its
    4·24 = 96 dims and k over 2·24 = 48 before the split: 96 + 48 weights per layer, not 24 + 24
    (its numerics: olmo2_7b against Olmo2ForCausalLM above)."""
    (tmp_path / "head.yaml").write_text(QWEN3_LIKE.replace("qk_norm: true", "qk_norm: head"))
    (tmp_path / "all.yaml").write_text(QWEN3_LIKE.replace("qk_norm: true", "qk_norm: all"))
    (tmp_path / "true.yaml").write_text(QWEN3_LIKE)
    per_head, every, true = (graphspec.load(tmp_path / f"{k}.yaml") for k in ("head", "all", "true"))
    assert str(per_head.graph) == str(true.graph).replace("true.yaml", "head.yaml")
    assert every.params() - true.params() == 2 * (96 + 48 - 2 * 24)
    assert every.graph["layers.0.self_attn.q_norm"].shape[-1] == 96
