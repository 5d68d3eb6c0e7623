"""torch.fx both ways, FlopCounterMode against the IR's MACs, and training.

- `to_fx(graph)` computes what the generated module computes (same parameters, same outputs);
- `from_fx(trace(generated))` reads the generated module back to the IR's op kinds: the same
  number of linear / matmul / softmax / layer_norm / window ops as the graph it came from;
- FlopCounterMode on the generated module counts 2 × the IR's MACs. NB: on CPU it counts
  F.scaled_dot_product_attention as 0 (its CPU kernel has no formula), so for fused attention the
  IR's attention MACs (QKᵀ + ·V) are added back, and any SDPA flops it did count are taken out;
- a small spec trains: loss falls on a synthetic task and every parameter gets a gradient.
"""

from __future__ import annotations

import pytest
import torch
from graphspec.codegen import emit, load
from graphspec.codegen.fx import from_fx, op_counts, to_fx, trace
from torch.utils.flop_counter import FlopCounterMode

import graphspec
from graphspec import analysis

PASSES = ["none", "default"]
CASES = {
    "swin_t": (["img_size=64", "C=32", "M=4", "classes=10", "encoder.depths=[2, 2]", "encoder.heads=[2, 4]"],
               lambda b: (torch.randn(b, 3, 64, 64),)),
    "vit_b16": (["img_size=32", "patch=8", "D=64", "L=2", "h=4", "classes=10"], lambda b: (torch.randn(b, 3, 32, 32),)),
    "gpt2": (["vocab=100", "d=64", "L=2", "h=4", "seq_len=16"], lambda b: (torch.randint(0, 100, (b, 16)),)),
    "bert_base": (["vocab=100", "H=64", "L=2", "A=4", "seq_len=16"], lambda b: (torch.randint(0, 100, (b, 16)),)),
    "transformer_base": (["d_model=64", "h=4", "d_ff=128", "N=2", "vocab=100", "seq_len=12"],
                         lambda b: (torch.randint(0, 100, (b, 12)), torch.randint(0, 100, (b, 12)))),
}
KINDS = ("linear", "matmul", "softmax", "layer_norm", "conv2d", "embedding", "attention", "gelu", "relu",
         "window_partition", "window_reverse", "roll", "patch_merge", "add_window_mask", "causal_mask")


def build(name, passes, batch=None):
    overrides, inputs = CASES[name]
    m = graphspec.load(name, overrides + ([f"batch={batch}"] if batch else []))
    g = m.graph
    if passes != "none":
        from graphspec.passes import run_pipeline

        g, _ = run_pipeline(g, passes)
    gen = emit(g, m.spec)
    return g, getattr(load(gen.source), gen.class_name)().eval(), inputs


def first(y):
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("passes", PASSES)
@pytest.mark.parametrize("name", list(CASES))
def test_fx_both_ways(name, passes):
    g, net, inputs = build(name, passes)
    gm = to_fx(g).eval()
    gm.load_state_dict(net.state_dict(), strict=True)  # the same parameter names
    xs = inputs(2)
    with torch.no_grad():
        assert torch.allclose(first(gm(*xs)), first(net(*xs)), atol=1e-5)
    back = from_fx(trace(net), *xs)
    assert op_counts(back, KINDS) == op_counts(g, KINDS)
    assert op_counts(g, KINDS)["linear"] > 0
    shapes = {n.name: n.shape for n in back}
    assert all(len(s) > 0 for k, s in shapes.items() if k.endswith(".q") or k.endswith(".qkv"))


SMALL_LLM = ["L=2", "d=64", "h=4", "kv=2", "d_ff=96", "vocab=100", "seq_len=16"]
LLMS = {"llama3_2_1b": [*SMALL_LLM, "hd=16"], "mixtral_8x7b": [*SMALL_LLM, "experts=4"],
        "gemma2_2b": [*SMALL_LLM, "hd=16", "window=8"],
        "gpt_oss_20b": [*SMALL_LLM, "hd=16", "experts=4", "top_k=2", "window=8"]}


@pytest.mark.parametrize("name", sorted(LLMS))
def test_trace_of_generated_llms_computes_the_module(name):
    """trace() keeps the helpers that branch on shapes and settings (apply_rotary, the masks,
    the sink softmax) and a mixture's router and experts (they dispatch on the data) as one call
    each: the traced GraphModule computes the module's logits, with one rotary call per q and k."""
    m = graphspec.load(name, LLMS[name])
    gen = emit(m.graph, m.spec)
    net = getattr(load(gen.source), gen.class_name)().eval()
    gm = trace(net)
    x = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(first(gm(x)), first(net(x)))
    assert op_counts(from_fx(gm), ("rotary",))["rotary"] == op_counts(m.graph, ("rotary",))["rotary"] > 0


@pytest.mark.parametrize("passes", PASSES)
@pytest.mark.parametrize("name", list(CASES))
def test_flop_counter_is_twice_the_ir_macs(name, passes):
    g, net, inputs = build(name, passes, batch=1)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(*inputs(1))
    counted = fc.get_total_flops()
    sdpa = sum(v for k, v in fc.get_flop_counts()["Global"].items() if "scaled_dot_product" in str(k))
    attention_macs = sum(analysis.node_cost(g, n) for n in g if n.op == "attention")  # QKᵀ + ·V
    assert counted - sdpa + 2 * attention_macs == 2 * analysis.macs(g)
    if passes == "none":
        assert counted == 2 * analysis.macs(g)  # nothing to add back: attention is explicit matmuls


def test_swin_t_flop_counter_full_size():
    """Swin-T at 224, unfused: FlopCounterMode = 2 × 4,490,566,656 MACs (torchvision's _ops)."""
    m = graphspec.load("swin_t")
    net = m.to_torch().eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(torch.randn(1, 3, 224, 224))
    assert fc.get_total_flops() == 2 * m.macs() == 2 * 4_490_566_656


def _train(net, batches, steps=40, lr=2e-3):
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    losses = []
    net.train()
    for step in range(steps):
        x, y, loss_fn = batches(step)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        if step == 0:
            missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
            assert not missing, f"no gradient: {missing}"
        opt.step()
        losses.append(loss.item())
    return losses


def test_swin_trains_on_a_synthetic_task():
    """Four classes: one of the three channels bright, or all dark; drop path on (0 .. 0.1)."""
    torch.manual_seed(0)
    m = graphspec.load("swin_t", ["img_size=32", "C=16", "M=4", "classes=4", "encoder.depths=[2, 2]",
                                  "encoder.heads=[1, 2]", "drop_path=0.1"])
    net = m.to_torch()

    def batches(step):
        y = torch.randint(0, 4, (16,))
        x = 0.5 * torch.randn(16, 3, 32, 32)
        for i, c in enumerate(y.tolist()):
            if c < 3:
                x[i, c] += 1.0
            else:
                x[i] -= 1.0
        return x, y, torch.nn.functional.cross_entropy

    losses = _train(net, batches)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_gpt2_trains_on_a_synthetic_task():
    """Next token = previous token + 1 (mod 16), causal attention, tied head, dropout on."""
    torch.manual_seed(0)
    m = graphspec.load("gpt2", ["vocab=16", "d=32", "L=2", "h=2", "n_ctx=32", "seq_len=12"])
    net = m.to_torch()

    def batches(step):
        start = torch.randint(0, 16, (16, 1))
        seq = (start + torch.arange(13)) % 16
        return seq[:, :-1], seq[:, 1:], lambda logits, y: torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), y.flatten())

    losses = _train(net, batches, steps=60)
    assert losses[-1] < 0.5 * losses[0]
