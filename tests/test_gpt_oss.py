"""gpt-oss (OpenAI 2025, arXiv:2508.10925) against Hugging Face's GptOssForCausalLM.

What is new in graphspec for it: attention sinks (`sinks: true`, one learned logit per head in
each softmax), the clamped SwiGLU expert (`clamped_swiglu(d_ff, alpha, limit)`, HF's
GptOssExperts layout with biases) and the biased top-k-softmax router (`router=topk_softmax`).
HF models are built from Config objects (random weights, no downloads): parameter counts on the
meta device (gpt-oss-20b and -120b at full size), MACs = FlopCounterMode/2 of a small eager
model, and the logits of a tiny model whose sinks, router and expert biases are perturbed
(so that each matters) against graphspec's generated module, the interpreter, torch.fx and ONNX.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from graphspec.codegen.fx import to_fx

import graphspec
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

RTOL = 1e-5
# a tiny gpt-oss: 3 layers (sliding, full, sliding) of d 48, 4 heads of 16 over 2 kv heads, 8
# experts of 40, top 2, window 4 (< N = 12, so the window acts); the published YaRN rope
SMALL = dict(vocab_size=120, hidden_size=48, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, num_local_experts=8, num_experts_per_tok=2, sliding_window=4,
             experts_implementation="eager")
SETS = ["vocab=120", "d=48", "L=3", "h=4", "kv=2", "hd=16", "experts=8", "top_k=2", "d_ff=40", "window=4", "seq_len=12"]


def gpt_oss(device="meta", **cfg):
    config = transformers.GptOssConfig(**cfg, attn_implementation="eager")
    if device == "meta":
        return hf_ref.meta(transformers.GptOssForCausalLM, config)
    hf = hf_ref.random_hf(transformers.GptOssForCausalLM, config)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # sinks and router of order 1, gates wide enough to reach the clamp at 7
        for name, p in hf.named_parameters():
            if "sinks" in name or ".router." in name:
                p.normal_(0, 1.0, generator=g)
            elif name.endswith("gate_up_proj"):
                p.normal_(0, 0.6, generator=g)
            elif name.endswith("_bias"):
                p.normal_(0, 0.3, generator=g)
    return hf


@pytest.fixture(scope="module")
def tiny():
    return gpt_oss("cpu", **SMALL), graphspec.load("gpt_oss_20b", SETS)


IDS = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(1))


def test_gpt_oss_20b_and_120b_counts_are_hugging_faces():
    """20,914,757,184 parameters (card: 20.9B) and 116,829,156,672 for 120b (card: 116.8B). The
    card's active counts (3.6B, 5.1B) leave out the token embedding (579,133,440): graphspec's
    active_params less it is 3,608,307,264 and 5,132,849,472."""
    for layers, experts, sets, card_active in ((24, 32, [], 3.6e9), (36, 128, ["L=36", "experts=128"], 5.1e9)):
        hf = gpt_oss(num_hidden_layers=layers, num_local_experts=experts)
        total = hf_ref.n_params(hf)
        routed = sum(p.numel() for n, p in hf.named_parameters() if ".experts." in n)
        assert routed == layers * experts * (3 * 2880**2 + 3 * 2880)  # gate_up, down and their biases
        m = graphspec.load("gpt_oss_20b", sets)
        assert m.params() == total
        assert m.active_params() == total - routed * (experts - 4) // experts
        assert round(m.active_params() - hf.model.embed_tokens.weight.numel(), -8) == card_active
    m = graphspec.load("gpt_oss_20b")
    assert m.params() == 20_914_757_184 == m.spec.expect["params"]
    assert m.active_params() == 4_187_440_704 == m.spec.expect["active_params"]
    assert graphspec.load("gpt_oss_20b", ["L=36", "experts=128"]).params() == 116_829_156_672


def test_macs_are_flop_counter_halves(tiny):
    """FlopCounterMode (eager) sees the q/k/v/o linears, the router, each token's top-2 experts,
    QKᵀ and ·V, the head; the sink's concat and softmax and every bias add are not MACs."""
    hf, m = tiny
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        hf(input_ids=IDS[:1])
    # per token: 3 · (q, k, v, o 48·(64 + 32 + 32 + 64) + router 48·8 + 2 experts · 3·48·40) + head 48·120
    per_token = 3 * (48 * 192 + 48 * 8 + 2 * 3 * 48 * 40) + 48 * 120
    assert m.macs() == fc.get_total_flops() // 2 == 12 * per_token + 3 * 2 * 4 * 12**2 * 16
    full = graphspec.load("gpt_oss_20b")
    per_token = 24 * (2880 * 9216 + 2880 * 32 + 4 * 3 * 2880**2) + 2880 * 201088
    assert full.macs() == 128 * per_token + 24 * 2 * 64 * 128**2 * 64 == full.spec.expect["macs"]


@pytest.mark.parametrize("passes", ["none", "default"])
def test_generated_module_interpreter_and_fx_match_hugging_face(tiny, passes):
    hf, m = tiny
    graph, net, src = hf_ref.generated(m, passes)
    assert "softmax_with_sinks(attn, self.sinks)" in src and "self.sinks = nn.Parameter" in src
    assert "clamped_swiglu(gate, up, self.alpha, self.limit)" in src
    assert "self.router = SoftmaxTopKRouter(dim, experts, top_k)" in src
    assert hf_ref.hf_logits_error(hf, net, graph, IDS, "llama") < RTOL  # strict load of HF's names
    assert hf_ref.round_trip_mismatches(net, graph, "llama", hf) == []
    params = to_graphspec(hf, graph, "llama")
    gm = to_fx(graph)
    gm.load_state_dict(params, strict=True)
    with torch.no_grad():
        want = hf(input_ids=IDS[:1]).logits
        assert hf_ref.rel_err(gm(IDS[:1]), want) < RTOL
        assert hf_ref.rel_err(hf_ref.interpreted(graph, IDS[:1], params), want) < RTOL


def test_sinks_biases_window_and_clamp_each_matter(tiny):
    """The comparison above must exercise them: with the sinks, the router's or the experts'
    biases zeroed, the window widened or the clamp lifted, the logits move away from HF's."""
    hf, m = tiny
    graph, net, _ = hf_ref.generated(m)
    net.load_state_dict(to_graphspec(hf, graph, "llama"), strict=True)
    with torch.no_grad():
        want = hf(input_ids=IDS).logits
        assert hf_ref.rel_err(net(IDS), want) < RTOL
        for suffix in ("sinks", "router.bias", "gate_up_proj_bias", "down_proj_bias"):
            state = {k: (torch.zeros_like(v) if k.endswith(suffix) else v) for k, v in net.state_dict().items()}
            other = hf_ref.generated(m)[1]
            other.load_state_dict(state, strict=True)
            assert hf_ref.rel_err(other(IDS), want) > 1e-3, suffix
        for sets in (["window=12"], ["limit=100"]):
            g2, n2, _ = hf_ref.generated(graphspec.load("gpt_oss_20b", SETS + sets))
            n2.load_state_dict(to_graphspec(hf, g2, "llama"), strict=True)
            assert hf_ref.rel_err(n2(IDS), want) > 1e-3, sets


def test_sliding_window_sees_window_keys_as_hugging_face():
    """HF's sliding_window=W (sliding_window_overlay: q - W < k ≤ q) is graphspec's sliding(W):
    the attention weights of a sliding layer are zero exactly outside i-W < j ≤ i."""
    hf = gpt_oss("cpu", **SMALL)
    with torch.no_grad():
        out = hf(input_ids=IDS[:1], output_attentions=True)
    probs = out.attentions[0][0, 0]  # layer 0 (sliding), head 0: N, N
    i, j = torch.arange(12).unsqueeze(1), torch.arange(12)
    keep = (j <= i) & (j > i - 4)
    assert bool((probs[~keep] == 0).all()) and bool((probs[keep] > 0).all())
    assert float(probs.sum(-1).max()) < 1.0  # the sink takes a share of every row


def test_onnx_matches_hugging_face(tiny):
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    hf, m = tiny
    for passes in ("none", "default"):
        graph = hf_ref.pipeline(m.graph, passes)
        arrays = {k: v.numpy() for k, v in to_graphspec(hf, graph, "llama").items()}
        (got,) = gx.run(gx.export(graph, arrays), {graph.inputs[0].name: IDS[:1].numpy()})
        with torch.no_grad():
            assert hf_ref.rel_err(torch.from_numpy(got), hf(input_ids=IDS[:1]).logits) < 1e-4


@pytest.mark.parametrize("text, message", [
    ("clamped_swiglu(64, limit=-1)", "clamped_swiglu() argument `limit` must be > 0, got -1"),
    ("clamped_swiglu(64, alpha=0)", "clamped_swiglu() argument `alpha` must be > 0, got 0"),
    ("clamped_swiglu(64, beta=1)", "clamped_swiglu() has no argument 'beta'"),
])
def test_bad_expert_arguments_are_located_errors(tmp_path, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: tokens(8)\nembed: tokens(100, dim=32, pos=rope(10000))\ndecoder×1:\n  dim: 32\n"
                    f"  heads: 4\n  sinks: true\n  mlp: moe(4, 2, expert={text}, router=topk_softmax)\n")
    r = CliRunner().invoke(main, ["flops", str(spec)])
    assert r.exit_code == 2, r.output
    assert f"{spec}:7:8: error: {message}" in r.output
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("field, message", [
    ("  sinks: 3\n  mlp: moe(4, 2, expert=clamped_swiglu(64))", "sinks"),
    ("  mlp: moe(4, 2, expert=clamped_swiglu(64), router=topk_softmax, normalize=false)",
     "topk_softmax's weights are a softmax over the top_k"),
    ("  mlp: moe(4, 2, expert=clamped_swiglu(64), router=topk_softmax(bias=2))", "topk_softmax() argument `bias`"),
])
def test_bad_sinks_and_router_are_located_errors(tmp_path, field, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"input: tokens(8)\nembed: tokens(100, dim=32)\ndecoder×1:\n  dim: 32\n  heads: 4\n{field}\n")
    r = CliRunner().invoke(main, ["flops", str(spec)])
    assert r.exit_code == 2, r.output
    assert f"{spec}:6:" in r.output and message in r.output and "fix:" in r.output
