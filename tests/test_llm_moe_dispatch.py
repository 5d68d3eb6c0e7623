"""The generated Experts module's dispatch (tokens sorted by expert, one grouped matmul per
projection, or a loop over experts where torch lacks F.grouped_mm) computes what Hugging Face's
eager MixtralExperts computes (one_hot mask, torch.where, index_add_) — logits and the gradient
of every parameter — on both paths, with experts that receive no token; an ungated expert
matches the IR interpreter's dense rule (every expert on every token, weighted by the router).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from graphspec.codegen import emit, load

import graphspec
from graphspec.interpret import run
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
# 8 experts, top 2, 2 × 5 tokens: 20 (token, expert) pairs over 8 experts, some get none
SETS = ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "experts=8", "top_k=2", "seq_len=5"]


def pair():
    cfg = transformers.MixtralConfig(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=8, num_key_value_heads=2, num_local_experts=8,
                                     num_experts_per_tok=2, rms_norm_eps=1e-5, router_jitter_noise=0.0,
                                     tie_word_embeddings=False, sliding_window=None,
                                     attn_implementation="eager", experts_implementation="eager")
    torch.manual_seed(0)
    hf = transformers.MixtralForCausalLM(cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    m = graphspec.load("mixtral_8x7b", SETS)
    gen = emit(m.graph, m.spec)
    net = getattr(load(gen.source), gen.class_name)()
    net.load_state_dict(to_graphspec(hf, m.graph), strict=True)
    return hf.train(), net.train(), m.graph


def rel(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped_mm", "loop"])
def test_experts_forward_and_gradients_match_hugging_face(grouped, monkeypatch):
    if not grouped:
        monkeypatch.delattr(F, "grouped_mm", raising=False)
    elif not hasattr(F, "grouped_mm"):
        pytest.skip("this torch has no F.grouped_mm")
    hf, net, _ = pair()
    ids = torch.randint(0, 120, (2, 5), generator=torch.Generator().manual_seed(2))
    hits = []  # experts each layer's router sends some token to
    for layer in hf.model.layers:
        layer.mlp.gate.register_forward_hook(lambda m, i, out: hits.append(len(out[2].unique())))
    ref, got = hf(input_ids=ids).logits, net(ids)
    assert min(hits) < 8  # the case this test is for: an expert with no token
    assert rel(got, ref) < 1e-5
    ref.pow(2).mean().backward()
    got.pow(2).mean().backward()
    hf_grads = {k.removeprefix("model."): p.grad for k, p in hf.named_parameters()}
    for name, p in net.named_parameters():  # the names differ by HF's `model.` prefix only
        assert rel(p.grad, hf_grads[name]) < 1e-4, name


UNGATED = """
name: tiny_moe_ungated
input: tokens(9)
embed: tokens(100, dim=32, pos=rope(10000))
decoder×2:
  dim: 32
  heads: 4
  kv_heads: 2
  norm: rms_norm(1e-5)
  mlp: moe(6, 2, expert=mlp(48, gelu))
  bias: false
  final_norm: true
head: lm(tied=false)
"""


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped_mm", "loop"])
def test_ungated_experts_match_the_interpreter(grouped, monkeypatch, tmp_path):
    if not grouped:
        monkeypatch.delattr(F, "grouped_mm", raising=False)
    (tmp_path / "moe.yaml").write_text(UNGATED)
    m = graphspec.load(str(tmp_path / "moe.yaml"))
    gen = emit(m.graph, m.spec)
    assert "gated=False" in gen.source
    torch.manual_seed(0)
    net = getattr(load(gen.source), gen.class_name)().eval()
    ids = torch.randint(0, 100, (1, 9), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = next(iter(run(m.graph, {m.graph.inputs[0].name: ids}, net.state_dict()).values()))
        assert rel(net(ids), ref) < 1e-5
