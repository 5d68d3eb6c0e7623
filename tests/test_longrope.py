"""LongRoPE (Phi-3-mini-128k, Phi-3.5-mini, Phi-4-mini: HF's rope_type "longrope") against Hugging
Face's Phi3ForCausalLM, built from a small Phi3Config with random weights and random factors.

- A Phi-4-mini-like layout (3/4 of each 16-dim head rotates: 6 factors per list), original 16
  tokens, max 128: imported from the config's JSON (transformers 5's rope_parameters, and the
  hub's legacy top-level rope_scaling + original_max_position_embeddings), the spec's generated
  module and IR interpreter give HF's logits (fp32, 1e-5 relative) at N = 12 (short factors) and
  N = 24 (> original: long factors), with and without the default passes; ONNX = eager (1e-4).
- The factors matter: unscaled RoPE, or the other list, on the same weights is far off.
- Export writes the rope_parameters back (Phi3Config accepts them; the same logits).
- Bad factor lists in a spec (wrong length, a name, a negative) and in a config are located errors.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.spec import SpecError

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)

RTOL = 1e-5

_rng = random.Random(0)
SHORT = [round(_rng.uniform(1.0, 1.5), 4) for _ in range(6)]
LONG = [round(_rng.uniform(1.0, 8.0), 4) for _ in range(6)]
SMALL = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, original_max_position_embeddings=16,
             pad_token_id=0, eos_token_id=1, bos_token_id=1, tie_word_embeddings=False)
ROPE = dict(rope_type="longrope", rope_theta=10000.0, partial_rotary_factor=0.75, short_factor=SHORT, long_factor=LONG)


def _hf(**rope):
    cfg = transformers.Phi3Config(**SMALL, rope_parameters={**ROPE, **rope}, attn_implementation="eager")
    return hf_ref.random_hf(transformers.Phi3ForCausalLM, cfg)


def _import(tmp_path, config: dict, N: int, name: str = "s.yaml"):
    from graphspec.interchange import from_hf_config

    path = tmp_path / name
    path.write_text(from_hf_config(config))
    return graphspec.load(path, [f"seq_len={N}", "batch=2"]), path.read_text()


def _config(hf) -> dict:
    return json.loads(hf.config.to_json_string())


def _ids(N: int):
    return torch.randint(0, 128, (2, N), generator=torch.Generator().manual_seed(N))


@pytest.mark.parametrize("N", [12, 24])
def test_imported_phi3_longrope_matches_hugging_face(tmp_path, N):
    hf = _hf()
    m, text = _import(tmp_path, _config(hf), N)
    assert "scaling=longrope(original=16," in text and f"short=[{', '.join(map(str, SHORT))}]" in text
    ids = _ids(N)
    for passes in ("none", "default"):
        graph, net, src = hf_ref.generated(m, passes)
        assert "scaling=ROPE_SCALING)" in src and "ROPE_SCALING = (" in src, passes
        assert hf_ref.hf_logits_error(hf, net, graph, ids) < RTOL, passes
    assert hf_ref.hf_interpreter_error(hf, m.graph, ids) < RTOL
    # the factors matter: unscaled, or the other list, on the same weights is far off
    want = hf(input_ids=ids).logits
    other = LONG if N <= 16 else SHORT  # the list HF does not use at this length, for both
    for variant in ("rope(10000, fraction=0.75)",
                    f"rope(10000, fraction=0.75, max_len=128, scaling=longrope(short={other}, long={other}, original=16))"):
        v = graphspec.load(tmp_path / "s.yaml", [f"seq_len={N}", "batch=2", f"embed=tokens(vocab, dim=d, pos={variant})"])
        with torch.no_grad():
            got = hf_ref.interpreted(v.graph, ids, hf_ref.to_graphspec(hf, v.graph))
        assert hf_ref.rel_err(got, want) > 1e-3, variant


def test_legacy_rope_scaling_imports_the_same_spec(tmp_path):
    """The hub's Phi-3 config.json: rope_scaling {type, short_factor, long_factor} and a top-level
    original_max_position_embeddings and rope_theta (Phi-3-mini-128k-instruct's layout)."""
    cfg = _config(_hf())
    legacy = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    legacy.update(rope_theta=10000.0, partial_rotary_factor=0.75,
                  rope_scaling={"type": "longrope", "short_factor": SHORT, "long_factor": LONG})
    a, _ = _import(tmp_path, cfg, 12, "a.yaml")
    b, _ = _import(tmp_path, legacy, 12, "b.yaml")
    assert [(n.op, n.attrs) for n in a.graph] == [(n.op, n.attrs) for n in b.graph]
    legacy["rope_scaling"]["type"] = "su"  # the first Phi-3-mini-128k config's name (Phi3Config maps it)
    su, _ = _import(tmp_path, legacy, 12, "c.yaml")
    assert [(n.op, n.attrs) for n in su.graph] == [(n.op, n.attrs) for n in a.graph]
    rot = next(n for n in a.graph if n.op == "rotary")
    assert rot.a["scaling"] == ("longrope", tuple(SHORT), tuple(LONG), 16, pytest.approx((1 + 2.0794415 / 2.7725887) ** 0.5))


def test_attention_factor_and_factor_are_read(tmp_path):
    """attention_factor given: cos/sin × it (HF's value, not √(1 + ln f / ln original))."""
    hf = _hf(attention_factor=1.3)
    m, text = _import(tmp_path, _config(hf), 24)
    assert "attention_factor=1.3" in text
    assert hf_ref.hf_interpreter_error(hf, m.graph, _ids(24)) < RTOL
    rot = next(n for n in graphspec.load(tmp_path / "s.yaml", [
        "embed=tokens(vocab, dim=d, pos=rope(10000, fraction=0.75, scaling=longrope("
        f"short={SHORT}, long={LONG}, original=16, factor=4)))"]).graph if n.op == "rotary")
    assert rot.a["scaling"][-1] == pytest.approx((1 + 1.3862944 / 2.7725887) ** 0.5)  # ln 4 / ln 16


def test_onnx_matches_eager_short_and_long(tmp_path):
    import numpy as np
    from graphspec.backends import onnx as gx
    from graphspec.backends import weights
    from graphspec.backends.torch import run_eager

    pytest.importorskip("onnxruntime")
    cfg = _config(_hf())
    for N in (12, 24):
        g = _import(tmp_path, cfg, N)[0].graph
        params, x = weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)
        ref = run_eager(g, params, x)
        got = gx.run(gx.export(g, params), x)
        for a, b in zip(got, ref, strict=True):
            assert float(np.abs(a - b).max()) <= 1e-4 * float(np.abs(b).max()), N


def test_export_round_trip(tmp_path):
    from graphspec.interchange.hf_export import to_hf_config

    hf = _hf()
    m, _ = _import(tmp_path, _config(hf), 24)
    out = to_hf_config(m)
    assert out["model_type"] == "phi3" and out["original_max_position_embeddings"] == 16
    rp = out["rope_parameters"]
    assert (rp["rope_type"], rp["short_factor"], rp["long_factor"]) == ("longrope", SHORT, LONG)
    back = transformers.Phi3Config(**{k: v for k, v in out.items() if k != "model_type"}, attn_implementation="eager")
    assert back.rope_parameters == hf.config.rope_parameters
    again = transformers.Phi3ForCausalLM(back).eval()
    again.load_state_dict(hf.state_dict(), strict=True)
    ids = _ids(24)
    with torch.no_grad():
        assert hf_ref.rel_err(again(input_ids=ids).logits, hf(input_ids=ids).logits) == 0.0


SPEC = """\
name: lr
vars: d=64
input: tokens(8)
embed: tokens(100, dim=d, pos=rope(10000, max_len=64, scaling=longrope(short=SHORT, long=[1, 2, 3, 4], original=16)))
decoder×1:
  dim: d
  heads: 8
  mlp: glu(96, silu)
head: lm(tied=true)
"""


@pytest.mark.parametrize("short, message", [
    ("[1, 1.1, 1.2]", "longrope's short has 3 factors, but rope rotates 8 dims of each head (4 frequencies)"),
    ("[1, 1.1, x, 1.2]", "longrope() argument `short`: entry 3 of 4 must be a number > 0, got x, a name no "
                         "variable defines"),
    ("[1, 1.1, -1, 1.2]", "longrope() argument `short`: entry 3 of 4 must be a number > 0, got '-1'"),
    ("[1, 1.1, 'a', 1.2]", "longrope() argument `short`: entry 3 of 4 must be a number > 0, got 'a'"),
    ("2", "longrope() argument `short` must be a list of numbers, got 2"),
])
def test_bad_factor_lists_are_located(tmp_path, monkeypatch, short, message):
    text = SPEC.replace("SHORT", short)
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as ei:
        graphspec.load("s.yaml")
    out = str(ei.value)
    assert out.startswith("s.yaml:4:") and message in out and "fix: " in out, out
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_good_spec_loads_and_needs_a_context_length(tmp_path):
    (tmp_path / "s.yaml").write_text(SPEC.replace("SHORT", "[1, 1.1, 1.2, 1.5]"))
    assert graphspec.load(tmp_path / "s.yaml").params() > 0
    (tmp_path / "s.yaml").write_text(SPEC.replace("SHORT", "[1, 1.1, 1.2, 1.5]").replace("max_len=64, ", ""))
    with pytest.raises(SpecError, match="longrope's attention factor needs the context length"):
        graphspec.load(tmp_path / "s.yaml")


@pytest.mark.parametrize("change, message", [
    (dict(short_factor=SHORT[:5]), "option rope_parameters.short_factor has 5 factors, but each head rotates 12 dims"),
    (dict(long_factor=[1.0, "2", 3.0, 4.0, 5.0, 6.0]), "option rope_parameters.long_factor = "),
    (dict(long_factor=None), "option rope_parameters.long_factor = null must be a list of positive numbers"),
])
def test_bad_config_factor_lists_are_refused(change, message):
    from graphspec.interchange import from_hf_config

    cfg = _config(_hf())
    cfg["rope_parameters"] = {k: v for k, v in {**cfg["rope_parameters"], **change}.items() if v is not None}
    with pytest.raises(SpecError) as ei:
        from_hf_config(cfg)
    assert message in str(ei.value), str(ei.value)


def test_bundled_phi3_5_mini_is_the_released_config(tmp_path):
    """specs/phi3_5_mini.yaml: the parameters of Phi3ForCausalLM built on the meta device from
    Phi-3.5-mini-instruct's config (the factors as the spec header cites them), its MACs at N=128
    = FlopCounterMode/2 (eager, 2 layers), and the same rotary attribute as that config imported."""
    from torch.utils.flop_counter import FlopCounterMode

    from graphspec.interchange import from_hf_config

    m = graphspec.load("phi3_5_mini")
    rot = next(n for n in m.graph if n.op == "rotary").a["scaling"]
    _, short, long, original, af = rot
    cfg = dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=131072,
               original_max_position_embeddings=4096, rms_norm_eps=1e-5, pad_token_id=32000, bos_token_id=1,
               eos_token_id=32000, tie_word_embeddings=False, sliding_window=262144, rope_theta=10000.0,
               rope_scaling={"type": "longrope", "short_factor": list(short), "long_factor": list(long)})
    assert (len(short), len(long), original, round(af, 6)) == (48, 48, 4096, 1.190238)
    assert (short[:3], long[-2:]) == ((1.0, 1.0199999809265137, 1.0299999713897705), (64.52999877929688, 64.83999633789062))
    full = transformers.Phi3Config(**cfg)
    assert full.rope_parameters["rope_type"] == "longrope"
    assert hf_ref.n_params(hf_ref.meta(transformers.Phi3ForCausalLM, full)) == m.params() == 3_821_079_552
    two = transformers.Phi3Config(**{**cfg, "num_hidden_layers": 2}, attn_implementation="eager")
    with torch.device("meta"):
        hf = transformers.Phi3ForCausalLM(two).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            hf(input_ids=torch.zeros(1, 128, dtype=torch.long))
    assert graphspec.load("phi3_5_mini", ["L=2"]).macs() == fc.get_total_flops() // 2
    (tmp_path / "i.yaml").write_text(from_hf_config(json.loads(full.to_json_string())))
    assert next(n for n in graphspec.load(tmp_path / "i.yaml").graph if n.op == "rotary").a["scaling"] == rot
