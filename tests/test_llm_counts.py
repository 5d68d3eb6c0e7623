"""Today's decoder-only LLMs, counted: graphspec's IR against Hugging Face models built from
Config objects on the meta device (no hub, no memory for weights) and against torch's
FlopCounterMode with eager attention; GQA and sliding-window attention as sympy identities
through the real lowering; the `unmasked` convention's pair counts.

NB: FlopCounterMode counts 2 FLOPs per multiply-accumulate and CPU SDPA as 0, hence
attn_implementation="eager" (explicit matmuls, which it counts; causal and sliding masks dense).
"""

from __future__ import annotations

import pytest
import sympy
import torch

transformers = pytest.importorskip("transformers")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import graphspec  # noqa: E402
from graphspec.lower import SYMBOLS, lower_attention_block  # noqa: E402

LLAMA = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False, rms_norm_eps=1e-5)
MISTRAL = {**LLAMA, "intermediate_size": 14336, "num_key_value_heads": 8, "sliding_window": 4096}
MIXTRAL = {**MISTRAL, "num_local_experts": 8, "num_experts_per_tok": 2, "sliding_window": None}
# Qwen3-30B-A3B (arXiv:2505.09388, Table 2, and the released config)
QWEN3_MOE = dict(vocab_size=151936, hidden_size=2048, num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
                 head_dim=128, moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8, norm_topk_prob=True,
                 rms_norm_eps=1e-6, tie_word_embeddings=False,
                 rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})
# OLMo 2 7B (arXiv:2501.00656 and the released config)
OLMO2 = dict(vocab_size=100352, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
             num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False,
             rope_parameters={"rope_type": "default", "rope_theta": 500_000.0})
PHI2 = dict(vocab_size=51200, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32, num_attention_heads=32,
            partial_rotary_factor=0.4, tie_word_embeddings=False)

FAMILIES = {  # spec -> (model class, config class, config)
    "llama2_7b": ("LlamaForCausalLM", "LlamaConfig", LLAMA),
    "mistral_7b": ("MistralForCausalLM", "MistralConfig", MISTRAL),
    "mixtral_8x7b": ("MixtralForCausalLM", "MixtralConfig", MIXTRAL),
    "phi2": ("PhiForCausalLM", "PhiConfig", PHI2),
    "qwen3_30b_a3b": ("Qwen3MoeForCausalLM", "Qwen3MoeConfig", QWEN3_MOE),
    "olmo2_7b": ("Olmo2ForCausalLM", "Olmo2Config", OLMO2),
}


def hf(name: str, device="meta", **over):
    model_cls, cfg_cls, cfg = FAMILIES[name]
    moe = "num_local_experts" in cfg or "num_experts" in cfg
    extra = {"experts_implementation": "eager"} if moe else {}  # a loop FlopCounterMode sees
    config = getattr(transformers, cfg_cls)(**{**cfg, **over}, attn_implementation="eager", **extra)
    with torch.device(device):
        return getattr(transformers, model_cls)(config).eval()


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, published", [
    ("llama2_7b", 6_738_415_616), ("mistral_7b", 7_241_732_096), ("mixtral_8x7b", 46_702_792_704),
    ("phi2", 2_779_683_840), ("qwen3_30b_a3b", 30_532_122_624),
    ("olmo2_7b", 7_298_617_344)])
def test_params_equal_hugging_face(name, published):
    m = graphspec.load(name)
    assert n_params(hf(name)) == published
    assert m.params() == published == m.spec.expect["params"]


def test_mixtral_active_params():
    """Active: everything but the 6 of 8 experts a token skips in each layer, 32·6·3·4096·14336."""
    model = hf("mixtral_8x7b")
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)  # 32·8·3·4096·14336
    assert experts == 32 * 8 * 3 * 4096 * 14336
    active = n_params(model) - experts * 6 // 8
    assert active == 12_879_925_248
    m = graphspec.load("mixtral_8x7b")
    assert m.active_params() == active == m.spec.expect["active_params"]
    assert graphspec.load("llama2_7b").active_params() == 6_738_415_616  # dense: all of them


def test_qwen3_moe_active_params():
    """Qwen3-30B-A3B: all but the 120 of 128 experts a token skips, 48·120·3·2048·768; the paper's
    3.3B activated (arXiv:2505.09388, Table 2)."""
    model = hf("qwen3_30b_a3b")
    experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    assert experts == 48 * 128 * 3 * 2048 * 768
    active = n_params(model) - experts * 120 // 128
    assert active == 3_353_032_704
    m = graphspec.load("qwen3_30b_a3b")
    assert m.active_params() == active == m.spec.expect["active_params"]


def flop_counted_macs(model, N: int, B: int = 1) -> int:
    ids = torch.zeros(B, N, dtype=torch.long, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=ids)
    return fc.get_total_flops() // 2


@pytest.mark.parametrize("name", ["llama2_7b", "mistral_7b", "phi2", "olmo2_7b"])
def test_macs_equal_flop_counter_on_meta(name):
    """Full size on the meta device at N = 128. Llama-2-7B: 850,000,871,424 = 128 × 6,607,077,376
    (linears, LM head) + 32 × 2 × 128² × 4096 (QKᵀ, ·V)."""
    m = graphspec.load(name)
    counted = flop_counted_macs(hf(name), 128)
    assert m.macs() == counted == m.spec.expect["macs"]
    if name == "llama2_7b":
        assert counted == 850_000_871_424 == 128 * 6_607_077_376 + 32 * 2 * 128**2 * 4096


def test_mixtral_macs_count_the_router_and_top_k_experts():
    """MoE routing depends on the values (meta tensors have none): a small Mixtral with random
    weights, where FlopCounterMode sees each token run in exactly its top_k experts."""
    cfg = dict(vocab_size=1000, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
               num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)
    torch.manual_seed(0)
    model = hf("mixtral_8x7b", device="cpu", **cfg)
    over = ["vocab=1000", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "experts=4", "top_k=2", "seq_len=24"]
    m = graphspec.load("mixtral_8x7b", over)
    # per token: 2·(q, o 2·64² + k, v 2·64·16 + router 64·4 + 2 experts · 3·64·96) + head 64·1000
    per_token = 2 * (2 * 64**2 + 2 * 64 * 16 + 64 * 4 + 2 * 3 * 64 * 96) + 64 * 1000
    assert m.macs() == flop_counted_macs(model, 24) == 24 * per_token + 2 * 2 * 24**2 * 64


def test_qwen3_moe_macs_count_the_router_top_k_experts_and_wide_heads():
    """The same for a small Qwen3-MoE: 8 experts, top 3, head_dim 24 (q_proj 64 -> 96, wider than
    d), q/k norms (no MACs); FlopCounterMode on random weights at N = 20."""
    cfg = dict(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               head_dim=24, moe_intermediate_size=40, num_experts=8, num_experts_per_tok=3)
    torch.manual_seed(0)
    model = hf("qwen3_30b_a3b", device="cpu", **cfg)
    over = ["vocab=500", "d=64", "L=2", "h=4", "kv=2", "hd=24", "d_ff=40", "experts=8", "top_k=3", "seq_len=20"]
    m = graphspec.load("qwen3_30b_a3b", over)
    # per token: 2·(q, o 2·64·96 + k, v 2·64·48 + router 64·8 + 3 experts · 3·64·40) + head 64·500
    per_token = 2 * (2 * 64 * 96 + 2 * 64 * 48 + 64 * 8 + 3 * 3 * 64 * 40) + 64 * 500
    assert m.macs() == flop_counted_macs(model, 20) == 20 * per_token + 2 * 2 * 20**2 * 96


def test_unmasked_convention_counts_kept_pairs():
    """Causal: N(N+1)/2 pairs per head, not N²; sliding: Σᵢ min(i+1, W)."""
    N = 128
    llama = graphspec.load("llama2_7b")
    dense_attn = 32 * 2 * N * N * 4096
    assert llama.macs() - llama.macs("unmasked") == dense_attn - 32 * 2 * 4096 * N * (N + 1) // 2
    W, N = 4096, 8192  # Mistral past its window: 4096·4097/2 + 4096·4096 pairs per head
    m = graphspec.load("mistral_7b", [f"seq_len={N}"])
    pairs = sum(min(i + 1, W) for i in range(N))
    assert pairs == W * (W + 1) // 2 + (N - W) * W == 25_167_872
    assert m.macs() - m.macs("unmasked") == 32 * 2 * 4096 * (N * N - pairs)


def test_unmasked_convention_is_symbolic():
    B, N = SYMBOLS["B"], SYMBOLS["N"]
    macs = graphspec.load("llama2_7b", symbolic=True).macs("unmasked")
    assert sympy.expand(macs - (6_607_077_376 * B * N + 32 * 2 * 4096 * B * N * (N + 1) / 2)) == 0
    mistral = graphspec.load("mistral_7b", symbolic=True).macs("unmasked")
    at = {B: 1, N: 8192}
    assert mistral.subs(at) == graphspec.load("mistral_7b", ["seq_len=8192"]).macs("unmasked")
    assert mistral.subs({B: 1, N: 100}) == graphspec.load("mistral_7b", ["seq_len=100"]).macs("unmasked")


# -- symbolic identities through the real lowering ----------------------------------------------
n, C, h, g, W = sympy.symbols("n C h g W", positive=True, integer=True)


def test_gqa_is_an_identity():
    """GQA (Ainslie et al. 2023): q and o 2nC², k and v 2nC·(C·g/h) for g k/v heads, QKᵀ + ·V
    2n²C (each k/v head serves h/g query heads): Ω = 2nC² + 2nC²g/h + 2n²C."""
    gr = lower_attention_block(C, h, (n, 1), kv_heads=g, mask="causal")
    omega = 2 * n * C**2 + 2 * n * C**2 * g / h + 2 * n**2 * C
    assert sympy.simplify(graphspec.analysis.macs(gr) - omega) == 0
    assert graphspec.analysis.param_count(gr) == sympy.expand(2 * C**2 + 2 * C**2 * g / h + 2 * C + 2 * C * g / h)


def test_sliding_window_is_an_identity():
    """Dense, a sliding window costs what causal costs (4nC² + 2n²C); counting kept pairs it is
    4nC² + 2C·Σᵢ min(i+1, W) = 4nC² + 2C(nW − W(W−1)/2) once n > W."""
    gr = lower_attention_block(C, h, (n, 1), mask="sliding", sliding=64)
    assert sympy.simplify(graphspec.analysis.macs(gr) - (4 * n * C**2 + 2 * n**2 * C)) == 0
    kept = graphspec.analysis.macs(gr, graphspec.analysis.Convention.named("unmasked"))
    assert sympy.simplify(kept.subs(n, 1000) - (4 * 1000 * C**2 + 2 * C * (1000 * 64 - 64 * 63 // 2))) == 0
    assert sympy.simplify(kept.subs(n, 50) - (4 * 50 * C**2 + 2 * C * 50 * 51 // 2)) == 0
