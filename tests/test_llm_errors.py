"""Bad LLM specs: each mistake is one located SpecError with a fix, and the CLI exits 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.spec import SpecError

LLAMA = """\
name: tiny_llama
names: hf
vars: d=64, h=8, kv=2, L=2, W=8, rotary=1.0
input: tokens(16)
embed: tokens(100, dim=d, pos=rope(10000, fraction=rotary))
decoder×L:
  dim: d
  heads: h
  kv_heads: kv
  attention: sliding(W)
  norm: rms_norm(1e-5)
  mlp: glu(96, silu)
  bias: false
  final_norm: true
head: lm(tied=false)
"""

# (id, replace (old, new), (line, token the error points at), message, fix)
CASES = [
    ("kv_heads_divide_heads", ("kv=2", "kv=3"), (9, "kv"), "8 query heads do not split into 3 k/v head groups",
     "use kv_heads in [1, 2, 4, 8]"),
    ("odd_rotary_dims", ("rotary=1.0", "rotary=0.3"), (5, "tokens("), "rope rotates 0.3 × 8 = 2.4 dims",
     "fraction=0.25"),
    ("odd_rotary_dims_int", ("rotary=1.0", "rotary=0.375"), (5, "tokens("), "= 3 dims of each head, which is not an even",
     "fraction=0.25 or fraction=0.5"),
    ("top_k_over_experts", ("glu(96, silu)", "moe(4, 5, expert=glu(96, silu))"), (12, "moe("),
     "top_k 5 exceeds the 4 experts", "use top_k ≤ 4"),
    ("window_not_positive", ("W=8", "W=0"), (10, "sliding("), "sliding() argument `window` must be > 0, got 0",
     "with window > 0"),
    ("per_layer_list_length", ("sliding(W)", "[sliding(W), global, global]"), (10, "["),
     "the attention list has 3 entries for 2 blocks", "repeat a shorter list with pattern(...)"),
    ("rope_without_attention", ("  bias: false\n", "  bias: false\n  block: [[norm, mlp]]\n"), (5, "tokens("),
     "`rope` acts inside attention, but no block of this model has attention", "pos=learned(max_len)"),
    ("swiglu_as_activation", ("mlp: glu(96, silu)", "act: swiglu"), (12, "swiglu"),
     "activation 'swiglu': a gated MLP, not an activation", "write `mlp: glu(d_ff, silu)`"),
    ("unknown_mlp", ("glu(96, silu)", "gluu(96, silu)"), (12, "gluu"), "unknown MLP 'gluu'", "did you mean 'glu'?"),
    ("two_norm_epsilons", ("  bias: false\n", "  bias: false\n  eps: 1e-6\n"), (14, "1e-6"),
     "`eps:` and `norm: rms_norm(...)` both set the norm", "write the epsilon inside the norm"),
    # a mask's own position scheme (Gemma-3's local rope), RoPE scaling, repeated call forms
    ("mask_pos_at_the_embedding", ("sliding(W)", "sliding(W, pos=learned(64))"), (10, "sliding("),
     "sliding(): pos=learned acts at the embedding, not inside attention", "a mask takes pos=rope(theta, ...)"),
    ("mask_rope_odd_dims", ("sliding(W)", "sliding(W, pos=rope(10000, fraction=0.3))"), (10, "sliding("),
     "rope rotates 0.3 × 8 = 2.4 dims", "fraction=0.25 or fraction=0.5"),
    ("llama3_high_not_above_low", ("fraction=rotary)", "fraction=rotary, scaling=llama3(8, low=4, high=2))"),
     (5, "tokens("), "llama3(): high 2 is not above low 4", "llama3(8, low=1, high=4, original=8192)"),
    ("yarn_needs_original", ("fraction=rotary)", "scaling=yarn(4))"), (5, "tokens("), "yarn() needs `original`",
     "write yarn(factor, original"),
    ("yarn_betas_order", ("fraction=rotary)", "scaling=yarn(4, original=8, beta_fast=1, beta_slow=2))"), (5, "tokens("),
     "yarn(): beta_fast 1 is not above beta_slow 2", "beta_fast=32, beta_slow=1"),
    ("unknown_rope_scaling", ("fraction=rotary)", "scaling=ntk(4))"), (5, "tokens("),
     "unknown rope() argument `scaling` 'ntk'", "use one of none, linear, llama3, yarn"),
    ("repeat_zero_times", ("sliding(W)", "pattern(sliding(W) * 0, causal)"), (10, "sliding("),
     "sliding(W) * 0 repeats a call form 0 times", "from 1 to 100000"),
]


def column(text: str, line: int, token: str) -> int:
    return text.splitlines()[line - 1].rindex(token) + 1


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_located_error_with_fix(tmp_path, monkeypatch, case):
    _, (old, new), (line, token), message, fix = case
    assert old in LLAMA
    text = LLAMA.replace(old, new, 1)
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as ei:
        graphspec.load("s.yaml")
    assert len(ei.value.diagnostics) == 1, str(ei.value)
    out = str(ei.value)
    assert out.startswith(f"s.yaml:{line}:{column(text, line, token)}: error: "), out
    assert message in out and "fix: " in out and fix in out, out
    assert "did you mean 'gelu'" not in out
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_the_spec_itself_loads(tmp_path):
    (tmp_path / "s.yaml").write_text(LLAMA)
    m = graphspec.load(tmp_path / "s.yaml")
    assert m.params() > 0
