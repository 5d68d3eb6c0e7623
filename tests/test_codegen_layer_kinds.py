"""Three or more kinds of one layer's child, as hand-written code builds them: an if/elif chain
on a string argument in the block's constructor (Qwen3-Next's decoder layer branches on its layer
type the same way), the kind of each layer given by the stack's loop.

The reference is independent: Hugging Face's LlamaForCausalLM (random weights, from a Config)
with the MLPs of some layers replaced by HF's own DeepseekV3MoE (sigmoid router, groups,
correction bias, a shared expert) and Qwen2MoeSparseMoeBlock (softmax, not renormalised, a gated
shared expert). graphspec's generated module loads that model's state dict strictly and computes
its logits, as does the IR interpreter.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.weights import WeightError

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)

RTOL = 1e-5
GLU = "glu(48, silu)"
V3 = "moe(8, 3, expert=glu(16, silu), shared=1, router=sigmoid(4, 2, scale=2.5))"
QWEN = "moe(8, 3, expert=glu(16, silu), shared=2, shared_gate=true, normalize=false)"
LAYOUTS = {  # the spec's mlp field, layers, each layer's kind
    "pattern": (f'pattern({GLU}, "{V3}", "{QWEN}")', 6, "gvqgvq"),
    "list": (f'["{GLU}", "{V3}", "{QWEN}", "{V3}"]', 4, "gvqv"),
}


def spec_text(mlp: str, layers: int) -> str:
    return f"""name: three_kinds
names: hf
input: tokens(12)
embed: tokens(120, dim=32, pos=rope(10000))
decoder×{layers}:
  dim: 32
  heads: 4
  norm: rms_norm(1e-6)
  mlp: {mlp}
  bias: false
  final_norm: true
head: lm(tied=false)
"""


def hf_model(kinds: str):
    """A Llama with layer i's MLP of kind kinds[i]: g (LlamaMLP), v (DeepseekV3MoE), q (Qwen2-MoE)."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    cfg = transformers.LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=48, num_hidden_layers=len(kinds),
                                   num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-6,
                                   tie_word_embeddings=False, attn_implementation="eager",
                                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    v3 = transformers.DeepseekV3Config(hidden_size=32, moe_intermediate_size=16, n_routed_experts=8,
                                       num_experts_per_tok=3, n_group=4, topk_group=2, n_shared_experts=1,
                                       routed_scaling_factor=2.5, norm_topk_prob=True, experts_implementation="eager")
    qwen = transformers.Qwen2MoeConfig(hidden_size=32, moe_intermediate_size=16, shared_expert_intermediate_size=32,
                                       num_experts=8, num_experts_per_tok=3, norm_topk_prob=False,
                                       experts_implementation="eager")
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg)
    for layer, kind in zip(hf.model.layers, kinds, strict=True):
        if kind != "g":
            layer.mlp = DeepseekV3MoE(v3) if kind == "v" else Qwen2MoeSparseMoeBlock(qwen)
    hf = hf_ref.perturbed(hf, seed=1)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # the swapped blocks' own parameters (HF leaves them to the model's init)
        for layer, kind in zip(hf.model.layers, kinds, strict=True):
            if kind == "g":
                continue
            for p in layer.mlp.parameters():  # routers spread out, so that the choice of experts varies
                p.normal_(0, 0.3 if p.dim() == 2 and p.shape[0] == 8 else 0.1, generator=g)
            if kind == "v":  # a correction bias that moves the choice
                layer.mlp.gate.e_score_correction_bias.normal_(0, 0.2, generator=g)
    return hf.eval()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_three_mlp_kinds_generate_and_compute_hugging_faces_logits(tmp_path, layout):
    mlp, layers, kinds = LAYOUTS[layout]
    path = tmp_path / "three_kinds.yaml"
    path.write_text(spec_text(mlp, layers), encoding="utf-8")
    m = graphspec.load(path)
    hf = hf_model(kinds)
    assert m.params() == hf_ref.n_params(hf)
    graph, net, src = hf_ref.generated(m, "default")
    for line in ('if mlp_type == "swiglu":', "self.mlp = SwiGLU(dim, hidden_features=48)",
                 'elif mlp_type == "moe":', "self.mlp = MoE(dim, experts=8, top_k=3)",
                 "else:", "self.mlp = MoE2(dim, experts=8, top_k=3)",
                 "def __init__(self, dim, num_heads, mlp_type):"):
        assert line in src, line
    per_layer = {"pattern": 'mlp_type=("swiglu", "moe", "moe2")[i % 3])',
                 "list": 'mlp_types=("swiglu", "moe", "moe2", "moe")'}[layout]
    assert per_layer in src
    assert [type(b.mlp).__name__ for b in net.layers] == [{"g": "SwiGLU", "v": "MoE", "q": "MoE2"}[k] for k in kinds]
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(1))
    assert hf_ref.hf_logits_error(hf, net, graph, ids, "llama") < RTOL
    assert hf_ref.hf_interpreter_error(hf, m.graph, ids[:1], "llama") < RTOL
    hf.model.layers[1].mlp, hf.model.layers[2].mlp = hf.model.layers[2].mlp, hf.model.layers[1].mlp
    with pytest.raises(WeightError, match="shared_expert"):  # the kinds matter: swapped, they do not load
        hf_ref.hf_logits_error(hf, net, graph, ids, "llama")


def test_the_docs_three_kind_example_generates(tmp_path):
    """docs/spec_dsl.md's routers_and_drop (a dense MLP, a DeepSeek-V3 and a Qwen2-MoE block) was
    refused by codegen ("one of 3 classes") before the chain."""
    import re

    from test_docs import COMPLETE

    text = next(b for b in COMPLETE if re.search(r"^name: routers_and_drop$", b, re.M))
    (tmp_path / "example.yaml").write_text(text, encoding="utf-8")
    r = CliRunner().invoke(main, ["codegen", str(tmp_path / "example.yaml"), "-o", str(tmp_path / "out.py")])
    assert r.exit_code == 0, r.output
    src = (tmp_path / "out.py").read_text(encoding="utf-8")
    assert 'elif mlp_type == "moe":' in src and "mlp_types[i]" in src
    ns: dict = {}
    exec(compile(src, "out.py", "exec"), ns)  # noqa: S102  (our own generated file)
    net = ns["RoutersAndDrop"]()
    assert [type(b.mlp).__name__ for b in net.blocks] == ["Mlp", "MoE", "MoE2"]
    assert sum(p.numel() for p in net.parameters()) == graphspec.load(tmp_path / "example.yaml").params()
