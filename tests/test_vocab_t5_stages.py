"""T5's relative position buckets in a stack whose stages have different head counts.

A stack shares one `num_buckets × heads` table (Raffel et al. 2020, §2.1; Hugging Face's T5Stack
passes layer 0's bias on), built with the stack's first head count; a stage with other heads
(or a new length) now builds its own table, `layers.{i}.relative_attention_bias` (before, the
first stage's (h0, N, N) bias was added to (B, h1, N, N) logits: a shape error). Checked: the
second stage's bias equals table[bucket(j − i)] with the buckets of Hugging Face's
`T5Attention._relative_position_bucket` (an independent implementation), the generated module
equals the interpreter, and Hugging Face's T5 (one head count) keeps its single table.
"""

from __future__ import annotations

import pytest
import torch
from graphspec.codegen import emit, load

import graphspec
from graphspec import analysis
from graphspec.interpret import init_params, random_inputs, run

SPEC = """\
name: buckets_by_stage
input: tokens(12)
embed: tokens(100, dim=32, pos=relative_buckets(8, 16))
encoder:
  dim: 32
  depths: [1, 2]
  heads: [2, 4]
  scale: 1
  norm: rms_norm(1e-6)
  bias: false
"""


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text(SPEC)
    return graphspec.load(p)


def test_each_head_count_has_its_table(model):
    g = model.graph
    tables = {k: v for k, v in analysis.parameters(g).items() if "relative_attention_bias" in k}
    assert tables == {"relative_attention_bias.weight": (8, 2), "layers.1.relative_attention_bias.weight": (8, 4)}


def test_second_stage_bias_uses_hugging_faces_buckets(model):
    transformers = pytest.importorskip("transformers")
    g = model.graph
    params, x = init_params(g, seed=0), random_inputs(g, seed=1)
    name = "layers.1.relative_attention_bias"
    got = run(g.copy_with(list(g), outputs=(name,)), x, params)[name]
    rel = torch.arange(12)[None, :] - torch.arange(12)[:, None]  # j − i
    buckets = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
        rel, bidirectional=True, num_buckets=8, max_distance=16)
    want = params[f"{name}.weight"][buckets].permute(2, 0, 1)  # (h, N, N)
    assert got.shape == (4, 12, 12)
    torch.testing.assert_close(got, want)


def test_generated_module_equals_the_interpreter(model):
    g = model.graph
    gen = emit(g, model.spec)
    assert "def forward(self, x, position_bias):" in gen.source
    net = getattr(load(gen.source), gen.class_name)().eval()
    params, x = init_params(g, seed=0), random_inputs(g, seed=1)
    net.load_state_dict(params, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(net(*x.values()), next(iter(run(g, x, params).values())), rtol=1e-5, atol=1e-5)


def test_t5_keeps_one_table_per_stack():
    g = graphspec.load("t5_base").graph
    tables = sorted(k for k in analysis.parameters(g) if "relative_attention_bias" in k)
    assert tables == ["decoder.relative_attention_bias.weight", "encoder.relative_attention_bias.weight"]
