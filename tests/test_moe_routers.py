"""The routers and shared experts of Qwen2-MoE and DeepSeek-V2/V3 against Hugging Face.

Qwen2-MoE (Qwen1.5-MoE-A2.7B): a softmax top-k router without renormalisation and one shared
expert scaled by sigmoid(shared_expert_gate(x)) — `moe(..., shared=N, shared_gate=true,
normalize=false)`. DeepSeek-V3 (arXiv:2412.19437 §2.1.2): sigmoid affinities, a correction bias
for the choice only, group-limited choice by the sum of each group's best two, the chosen
affinities renormalised and scaled by 2.5 — `router=sigmoid(groups, topk_groups, scale=2.5)`.
DeepSeek-V2 (arXiv:2405.04434 §2.1.3, group_limited_greedy): softmax, groups ranked by their
best expert, scaled, not renormalised — `router=softmax(groups, topk_groups, scale=16)`.

HF models are built from Config objects (random weights, no downloads): the DeepSeek MoE blocks
alone, and a tiny DeepseekV3ForCausalLM (MLA, tests/test_mla.py's construct). graphspec's generated module loads HF's state dict strictly and
computes HF's output to 1e-5 relative in fp32, the IR interpreter too, ONNX and TVM (llvm) to 1e-4; counts equal HF's
parameters on the meta device and FlopCounterMode/2 (eager) on random weights, where the routing
is real.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from graphspec.codegen import emit, load

import graphspec
from graphspec import vocab
from graphspec.interpret import run
from graphspec.lower import Builder
from graphspec.spec import SpecError

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

RTOL = 1e-5

# Qwen1.5-MoE-A2.7B's released config (Qwen/Qwen1.5-MoE-A2.7B, config.json)
QWEN15_MOE = dict(vocab_size=151936, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                  num_attention_heads=16, num_key_value_heads=16, moe_intermediate_size=1408,
                  shared_expert_intermediate_size=5632, num_experts=60, num_experts_per_tok=4, norm_topk_prob=False,
                  qkv_bias=True, rms_norm_eps=1e-6, tie_word_embeddings=False, max_position_embeddings=8192,
                  rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})
# small: 8 experts of 24, top 3 of softmax, a shared expert of 2 × 24 = 48
SMALL = dict(vocab_size=120, hidden_size=64, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, moe_intermediate_size=24, shared_expert_intermediate_size=48, num_experts=8,
             num_experts_per_tok=3, attention_dropout=0.0, experts_implementation="eager",
             rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})
SMALL_SETS = ["vocab=120", "d=64", "L=2", "h=4", "d_ff=24", "experts=8", "top_k=3", "shared=2", "seq_len=12"]


def qwen2_moe(device="meta", **cfg):
    config = transformers.Qwen2MoeConfig(**cfg, attn_implementation="eager")
    if device == "meta":
        with torch.device("meta"):
            return transformers.Qwen2MoeForCausalLM(config)
    return hf_ref.random_hf(transformers.Qwen2MoeForCausalLM, config)


def test_qwen1_5_moe_counts_are_hugging_faces():
    """14,315,784,192 parameters (blog: 14.3B); active: all but the 56 of 60 experts a token
    skips in each layer, 24·56·3·2048·1408 (blog: 2.7B)."""
    hf = qwen2_moe(**QWEN15_MOE)
    total = sum(p.numel() for p in hf.parameters())
    experts = sum(p.numel() for n, p in hf.named_parameters() if ".experts." in n)
    assert experts == 24 * 60 * 3 * 2048 * 1408
    m = graphspec.load("qwen1_5_moe_a2_7b")
    assert m.params() == total == 14_315_784_192 == m.spec.expect["params"]
    assert m.active_params() == total - experts * 56 // 60 == 2_689_173_504 == m.spec.expect["active_params"]


def flop_counted_macs(model, ids) -> int:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=ids)
    return fc.get_total_flops() // 2


def test_qwen2_moe_macs_count_router_top_k_shared_expert_and_its_gate():
    """FlopCounterMode on random weights sees each token in exactly its top_k experts, the shared
    expert and its dim -> 1 gate."""
    hf = qwen2_moe("cpu", **SMALL)
    m = graphspec.load("qwen1_5_moe_a2_7b", SMALL_SETS)
    ids = torch.randint(0, 120, (1, 12), generator=torch.Generator().manual_seed(0))
    # per token: 2·(q, k, v, o 4·64² + router 64·8 + 3 experts · 3·64·24 + shared 3·64·48 + gate 64) + head 64·120
    per_token = 2 * (4 * 64**2 + 64 * 8 + 3 * 3 * 64 * 24 + 3 * 64 * 48 + 64) + 64 * 120
    assert m.macs() == flop_counted_macs(hf, ids) == 12 * per_token + 2 * 2 * 12**2 * 64
    assert m.params() == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize("passes", ["none", "default"])
def test_qwen2_moe_generated_module_and_interpreter_match_hugging_face(passes):
    hf = qwen2_moe("cpu", **SMALL)
    m = graphspec.load("qwen1_5_moe_a2_7b", SMALL_SETS)
    graph, net, src = hf_ref.generated(m, passes)
    assert "self.shared_expert_gate(x).sigmoid() * self.shared_expert(x)" in src
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(1))
    assert hf_ref.hf_logits_error(hf, net, graph, ids, "llama") < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "llama", hf) == []
    if passes == "none":
        assert hf_ref.hf_interpreter_error(hf, graph, ids[:1], "llama") < RTOL


# -- the DeepSeek MoE blocks alone ------------------------------------------------------------
V3 = dict(hidden_size=32, moe_intermediate_size=16, n_routed_experts=8, num_experts_per_tok=3, n_group=4,
          topk_group=2, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True)
V2 = dict(hidden_size=32, moe_intermediate_size=16, n_routed_experts=8, num_experts_per_tok=3, n_group=4,
          topk_group=2, n_shared_experts=2, routed_scaling_factor=16.0, topk_method="group_limited_greedy")
V2_GREEDY = {**V2, "topk_method": "greedy", "routed_scaling_factor": 1.0}
BLOCKS = {  # HF config, graphspec's moe(...)
    "v3": (V3, dict(experts=8, top_k=3, shared=1, router=("sigmoid", dict(groups=4, topk_groups=2, scale=2.5)))),
    "v2": (V2, dict(experts=8, top_k=3, shared=2, normalize=False,
                    router=("softmax", dict(groups=4, topk_groups=2, scale=16.0)))),
    "v2_greedy": (V2_GREEDY, dict(experts=8, top_k=3, shared=2, normalize=False)),  # = today's moe(normalize=false)
}


def hf_block(name: str, **over):
    cfg = {**BLOCKS[name][0], **over, "experts_implementation": "eager"}
    if name == "v3":
        config, cls = transformers.DeepseekV3Config(**cfg), transformers.models.deepseek_v3.modeling_deepseek_v3.DeepseekV3MoE
    else:
        config, cls = transformers.DeepseekV2Config(**cfg), transformers.models.deepseek_v2.modeling_deepseek_v2.DeepseekV2Moe
    torch.manual_seed(0)
    block = cls(config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3 if p.dim() == 2 and p.shape[0] == 8 else 0.1, generator=g)  # the router: spread scores
        if name == "v3":  # a correction bias that moves the choice
            block.gate.e_score_correction_bias.normal_(0, 0.2, generator=g)
    return block.eval()


def gs_block(name: str, shape=(2, 6, 32)):
    """The IR of `mlp: moe(...)` alone on an input x of `shape`."""
    args = dict(BLOCKS[name][1])
    if "router" in args:
        kind, rargs = args.pop("router")
        args["router"] = vocab.use("router", kind, **rargs)
    use = vocab.use("mlp", "moe", expert=vocab.use("mlp", "glu", d_ff=16), **args)
    b = Builder("moe_block")
    b.g.set_module("", "Block")
    x = b.emit("input", (), "x", shape=shape, kind="image")
    b.g.outputs = (use.lower(b, SimpleNamespace(dim=32, mlp_bias=False, dropout=0.0), x),)
    return b.g


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_deepseek_moe_block_matches_hugging_face(name):
    hf = hf_block(name)
    graph = gs_block(name)
    gen = emit(graph)
    net = getattr(load(gen.source), gen.class_name)().eval()
    net.mlp.load_state_dict(hf.state_dict(), strict=True)  # gate.weight, gate.e_score_correction_bias, experts.*
    x = torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = hf(x)
        assert hf_ref.rel_err(net(x), want) < RTOL
        params = {f"mlp.{k}": v for k, v in hf.state_dict().items()}
        assert hf_ref.rel_err(run(graph, {"x": x}, params)[graph.outputs[0]], want) < RTOL
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    arrays = {k: v.numpy() for k, v in params.items()}
    (got,) = gx.run(gx.export(graph, arrays), {"x": x.numpy()})
    assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    low = gt.lower(graph)
    (got,) = gt.Runner(gt.build(low, "llvm")[0], low.params, arrays)(x.numpy())
    assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4


def test_deepseek_v3_bias_and_groups_change_the_choice():
    """The V3 case must exercise both: without the bias, or with every group allowed, HF's
    output differs."""
    x = torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(2))
    hf = hf_block("v3")
    with torch.no_grad():
        want = hf(x)
        hf.gate.e_score_correction_bias.zero_()
        assert hf_ref.rel_err(hf(x), want) > 1e-3
        assert hf_ref.rel_err(hf_block("v3", topk_group=4)(x), want) > 1e-3


def test_deepseek_v3_counts():
    """Parameters = the HF block's (the correction bias is a buffer, not counted); MACs per token:
    router 32·8 + 3 experts · 3·32·16 + shared 3·32·16 = FlopCounterMode/2."""
    hf, graph = hf_block("v3"), gs_block("v3")
    assert graphspec.analysis.param_count(graph) == sum(p.numel() for p in hf.parameters())
    assert graphspec.analysis.buffers(graph) == {"mlp.gate.e_score_correction_bias": (8,)}
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        hf(torch.randn(2, 6, 32))
    assert graphspec.analysis.macs(graph) == fc.get_total_flops() // 2 == 12 * (32 * 8 + 4 * 3 * 32 * 16)


def test_correction_bias_is_a_zero_buffer_after_init_weights_on_meta():
    """Built on the meta device and materialised (to_empty), init_weights zeroes the bias (as HF's
    _init_weights) and draws the router's weight; the bias is state, not a parameter."""
    gen = emit(gs_block("v3"))
    with torch.device("meta"):
        net = getattr(load(gen.source), gen.class_name)()
    net.to_empty(device="cpu")
    net.mlp.gate.e_score_correction_bias.fill_(1.0)  # what uninitialised memory may hold
    net.init_weights()
    assert "mlp.gate.e_score_correction_bias" not in dict(net.named_parameters())
    assert torch.equal(net.mlp.gate.e_score_correction_bias, torch.zeros(8))
    assert 0.01 < net.mlp.gate.weight.detach().std().item() < 0.04


TINY_V3 = """\
name: tiny_deepseek_v3
names: hf
input: tokens(12)
embed: tokens(120, dim=64, pos=rope(10000, interleaved=true, max_len=64))
decoder×3:
  dim: 64
  heads: 4
  qkv: mla(kv_rank=32, rope_dim=8, nope_dim=16, v_dim=12, q_rank=24)
  norm: rms_norm(1e-6)
  mlp: first(1, glu(96, silu), moe(8, 3, expert=glu(24, silu), shared=1, router=sigmoid(4, 2, scale=2.5)))
  bias: false
  final_norm: true
head: lm(tied=false)
"""


def test_tiny_deepseek_v3_for_causal_lm(tmp_path):
    """A whole DeepseekV3ForCausalLM (MLA with a query latent, one dense layer, then sigmoid routing
    over 4 groups of 2 with a random correction bias, top 3, scale 2.5, one shared expert): the
    generated module and the interpreter compute HF's logits; params = HF's, MACs = FlopCounterMode/2."""
    cfg = transformers.DeepseekV3Config(
        vocab_size=120, hidden_size=64, intermediate_size=96, moe_intermediate_size=24, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32, q_lora_rank=24, qk_nope_head_dim=16,
        qk_rope_head_dim=8, v_head_dim=12, first_k_dense_replace=1, n_routed_experts=8, num_experts_per_tok=3,
        n_group=4, topk_group=2, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True,
        rope_interleave=True, rms_norm_eps=1e-6, tie_word_embeddings=False, max_position_embeddings=64,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, attn_implementation="eager",
        experts_implementation="eager")
    hf = hf_ref.random_hf(transformers.DeepseekV3ForCausalLM, cfg)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for layer in hf.model.layers[1:]:
            layer.mlp.gate.e_score_correction_bias.normal_(0, 0.05, generator=g)
    (tmp_path / "v3.yaml").write_text(TINY_V3, encoding="utf-8")
    m = graphspec.load(tmp_path / "v3.yaml")
    assert m.params() == sum(p.numel() for p in hf.parameters())
    graph, net, _ = hf_ref.generated(m, "default")
    x = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(6))
    assert hf_ref.hf_logits_error(hf, net, graph, x, "llama") < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "llama", hf) == []
    assert hf_ref.hf_interpreter_error(hf, m.graph, x[:1], "llama") < RTOL
    assert m.macs() == flop_counted_macs(hf, torch.zeros(1, 12, dtype=torch.long))


# -- bad router arguments: one located error with a fix, exit 2 ------------------------------
SPEC = """\
name: tiny_moe
names: hf
input: tokens(16)
embed: tokens(100, dim=32, pos=rope(10000))
decoder×2:
  dim: 32
  heads: 4
  norm: rms_norm(1e-6)
  mlp: MOE
  bias: false
  final_norm: true
head: lm(tied=false)
"""
BAD = [
    ("moe(8, 2, expert=glu(16, silu), router=sigmoid(4, 5))", "moe(", "topk_groups 5 exceeds the 4 groups",
     "use topk_groups ≤ 4"),
    ("moe(8, 2, expert=glu(16, silu), router=sigmoid(3, 2))", "moe(", "the 8 experts do not split into 3 equal groups",
     "use groups that divide 8"),
    ("moe(8, 3, expert=glu(16, silu), router=softmax(4, 1, scale=16))", "moe(",
     "top_k 3 exceeds the 2 experts of the 1 chosen groups of 2", "use topk_groups ≥ 2 or top_k ≤ 2"),
    ("moe(8, 2, expert=glu(16, silu), router=sigmoid(8, 2))", "moe(", "groups of 1 expert", "use groups ≤ 4"),
    ("moe(8, 2, expert=glu(16, silu), shared_gate=true)", "moe(", "shared_gate=true gates the shared expert",
     "give shared=N"),
    ("moe(8, 2, expert=glu(16, silu), router=sigmoid(2, 1, scale=0))", "moe(",
     "sigmoid() argument `scale` must be > 0, got 0", "with scale > 0"),
]


@pytest.mark.parametrize("moe, token, message, fix", BAD, ids=[b[2][:24] for b in BAD])
def test_bad_router_arguments_are_located_exit_2(tmp_path, monkeypatch, moe, token, message, fix):
    text = SPEC.replace("MOE", moe)
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as ei:
        graphspec.load("s.yaml")
    out = str(ei.value)
    col = text.splitlines()[8].index(token) + 1
    assert len(ei.value.diagnostics) == 1 and out.startswith(f"s.yaml:9:{col}: error: "), out
    assert message in out and "fix: " in out and fix in out, out
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


# -- HF interchange -----------------------------------------------------------------------------
# Qwen/Qwen1.5-MoE-A2.7B's config.json as released (transformers 4.x keys: rope_theta at the top).
# Checked in part: mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py @79d603f (`qwen2moe`) holds the
# -Chat model's file, which agrees key for key and in order except eos_token_id (151645 there) and
# max_position_embeddings (32768 there); the base model's 8192 is as a C# test's partial copy of this
# file has it; its eos_token_id 151643 was not checked against a copy.
PUBLISHED = {"architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
             "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
             "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21,
             "model_type": "qwen2_moe", "num_attention_heads": 16, "num_hidden_layers": 24, "num_key_value_heads": 16,
             "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": False,
             "torch_dtype": "bfloat16", "transformers_version": "4.39.0.dev0", "use_cache": True,
             "use_sliding_window": False, "vocab_size": 151936, "decoder_sparse_step": 1, "moe_intermediate_size": 1408,
             "shared_expert_intermediate_size": 5632, "num_experts_per_tok": 4, "num_experts": 60,
             "norm_topk_prob": False, "output_router_logits": False, "router_aux_loss_coef": 0.001}


def ir_lines(m) -> list[str]:
    return [ln.split("  #")[0] for ln in str(m.graph).splitlines()[1:]]


@pytest.mark.parametrize("which", ["published", "transformers5"])
def test_qwen2_moe_config_reproduces_the_bundled_spec_and_round_trips(tmp_path, which):
    """The released config (and Qwen2MoeConfig's to_dict of it) imports to the bundled spec's IR
    node for node; exported back, it is the config again (intermediate_size: the dense MLP's,
    built by no layer, written as the shared expert's width, as the released config holds it)."""
    from graphspec.interchange.hf_export import to_hf_config
    from graphspec.interchange.hf_import import from_hf_config

    cfg = PUBLISHED if which == "published" else \
        {**transformers.Qwen2MoeConfig(**QWEN15_MOE).to_dict(), "architectures": ["Qwen2MoeForCausalLM"]}
    (tmp_path / "i.yaml").write_text(from_hf_config(cfg))
    bundled = graphspec.load("qwen1_5_moe_a2_7b")
    assert ir_lines(graphspec.load(tmp_path / "i.yaml", ["seq_len=128"])) == ir_lines(bundled)
    out = to_hf_config(bundled)
    assert out["model_type"] == "qwen2_moe" and out["architectures"] == ["Qwen2MoeForCausalLM"]
    assert out["rope_parameters"] == {"rope_theta": 1_000_000.0, "rope_type": "default"} and out["head_dim"] == 128
    shared = {k for k in out if k in cfg and k != "rope_parameters"}
    assert len(shared) >= 18 and {k: cfg[k] for k in shared} == {k: out[k] for k in shared}

def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def test_qwen2_moe_checkpoint_stored_per_expert_imports_and_exports(tmp_path):
    """export --format hf -> HF's model and save_pretrained (one tensor per expert, as the hub's
    files are) -> import-weights: HF's tensors bit for bit (experts stacked as gate_up_proj), the
    logits HF's; export --weights of those -> from_pretrained loads them with no key missing."""
    sets = [a for s in SMALL_SETS for a in ("--set", s)]
    assert cli("export", "qwen1_5_moe_a2_7b", "--format", "hf", "-o", tmp_path / "cfg", *sets).exit_code == 0
    config = transformers.AutoConfig.from_pretrained(tmp_path / "cfg", attn_implementation="eager",
                                                     experts_implementation="eager")
    hf = hf_ref.random_hf(transformers.Qwen2MoeForCausalLM, config)
    hf.save_pretrained(tmp_path / "hf")
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "model.layers.1.mlp.experts.7.gate_proj.weight" in keys and "model.layers.1.mlp.shared_expert_gate.weight" in keys
    w = tmp_path / "w.safetensors"
    r = cli("import-weights", "qwen1_5_moe_a2_7b", tmp_path / "hf" / "model.safetensors", "-o", w, *sets)
    assert r.exit_code == 0, r.output
    got = load_file(str(w))
    theirs = {k.removeprefix("model."): v for k, v in hf.state_dict().items()}
    assert set(got) == set(theirs) and all(torch.equal(v, theirs[k]) for k, v in got.items())
    _, net, _ = hf_ref.generated(graphspec.load("qwen1_5_moe_a2_7b", SMALL_SETS))
    net.load_state_dict(got, strict=True)
    ids = torch.randint(0, 120, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = hf(input_ids=ids).logits
        assert hf_ref.rel_err(net(ids), want) < RTOL
        r = cli("export", "qwen1_5_moe_a2_7b", "--format", "hf", "-o", tmp_path / "out", "--weights", w, *sets)
        assert r.exit_code == 0, r.output
        back, info = transformers.Qwen2MoeForCausalLM.from_pretrained(tmp_path / "out", output_loading_info=True,
                                                                      attn_implementation="eager")
        assert not any(info.values()), info
        assert hf_ref.rel_err(back.eval()(input_ids=ids).logits, want) < RTOL
