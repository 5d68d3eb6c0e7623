"""GPT-J (Wang & Komatsuzaki 2021): `placement: parallel` (x + attn(ln(x)) + mlp(ln(x)), one
LayerNorm), `rope(10000, fraction=rotary_dim/head_dim, interleaved=true)`, q, k, v and out_proj
without bias, an untied head with a bias. References: Hugging Face's GPTJ* classes from small
GPTJConfig objects with random (perturbed) weights: parameters on the meta device, MACs by
FlopCounterMode, logits of the generated module (both pass pipelines), ONNX and TVM, `graphspec
import`, `export --format hf` and `import-weights`, and located errors."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402

generated, meta, n_params, rel_err = hf_ref.generated, hf_ref.meta, hf_ref.n_params, hf_ref.rel_err
task_outputs, our_outputs = hf_ref.task_outputs, hf_ref.our_outputs
RTOL = 1e-5
SMALL = dict(vocab_size=100, n_embd=32, n_layer=2, n_head=2, rotary_dim=8, n_positions=40, num_labels=3, pad_token_id=0)
TASKS = {"ForCausalLM": "lm(tied=false, bias=true)", "Model": "none",
         "ForSequenceClassification": "classifier(3, pool=last, bias=false, pad_token_id=0)",
         "ForQuestionAnswering": "span"}


def imported(tmp_path, task, **kw):
    cls = "GPTJ" + task
    cfg = transformers.GPTJConfig(**{**SMALL, **({"num_labels": 2} if task == "ForQuestionAnswering" else {}), **kw},
                                  architectures=[cls])
    text, path = hf_ref.config_imported(tmp_path, cfg)
    return cfg, getattr(transformers, cls), text, path


def ids(seed=0):
    return torch.randint(1, 100, (2, 12), generator=torch.Generator().manual_seed(seed))




def test_bundled_spec_counts_as_hugging_face():
    """gpt-j-6b: params = HF GPTJForCausalLM(GPTJConfig()) on meta, 6,050,882,784 (the README's
    6,053,381,344 does not reproduce); MACs at 128 tokens = FlopCounterMode / 2, eager."""
    from torch.utils.flop_counter import FlopCounterMode

    hf = meta(transformers.GPTJForCausalLM, transformers.GPTJConfig(attn_implementation="eager")).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        hf(input_ids=torch.full((1, 128), 5, dtype=torch.long, device="meta"))
    m = graphspec.load("gpt_j_6b")
    assert m.params() == n_params(hf) == 6_050_882_784
    assert m.macs() == counter.get_total_flops() // 2


@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_imported_model_computes_hugging_faces_outputs(tmp_path, task, passes):
    cfg, cls, text, path = imported(tmp_path, task)
    assert "pos=rope(10000, fraction=0.5, interleaved=true, max_len=40)" in text and "placement: parallel" in text
    assert text.endswith(f"head: {TASKS[task]}\n"), text
    m = graphspec.load(path, ["seq_len=12", "batch=2"])
    assert m.params() == n_params(meta(cls, cfg))
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, _ = generated(m, passes)
    net.load_state_dict(to_graphspec(hf, graph, "gptj"), strict=True)
    with torch.no_grad():
        got, want = our_outputs(net(ids()), task), task_outputs(hf(input_ids=ids()), task)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and rel_err(g, w) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "gptj", hf) == []


def test_the_rotation_layout_matters(tmp_path):
    """The comparison above can fail: the same weights with the halves paired (Llama's layout) or
    all of each head rotated are off by > 1e-3 (5e-3 measured for the halves: RoPE moves a small
    random model's logits little), against < 1e-6 for GPT-J's own layout."""
    cfg, cls, _, path = imported(tmp_path, "ForCausalLM")
    hf = hf_ref.random_hf(cls, cfg)
    with torch.no_grad():
        want = hf(input_ids=ids(1)).logits
    for pos in ("rope(10000, fraction=0.5, max_len=40)", "rope(10000, interleaved=true, max_len=40)"):
        graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2", f"embed.pos={pos}"]))
        net.load_state_dict(to_graphspec(hf, graph, "gptj"), strict=True)
        with torch.no_grad():
            assert rel_err(net(ids(1)), want) > 1e-3, pos  # the exact layout: < 1e-6


def test_onnx_and_tvm_compute_hugging_faces_logits(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    cfg, cls, _, path = imported(tmp_path, "ForCausalLM")
    hf = hf_ref.random_hf(cls, cfg)
    errors = hf_ref.hf_backend_errors(hf, graphspec.load(path, ["seq_len=12", "batch=2"]), ids(2), "gptj")
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("task", sorted(TASKS))
def test_exported_weights_load_into_hugging_face_and_back(tmp_path, task):
    _, cls, _, path = imported(tmp_path, task)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2"]), "default")
    hf_ref.perturbed(net, seed=4)
    hf, out = hf_ref.export_and_load(tmp_path, path, net, cls)
    assert (out["model_type"], out["architectures"], out["rotary_dim"]) == ("gptj", [cls.__name__], 8)
    with torch.no_grad():
        got, want = our_outputs(net(ids(5)), task), task_outputs(hf(input_ids=ids(5)), task)
    assert all(rel_err(g, w) < RTOL for g, w in zip(got, want, strict=True))
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


@pytest.mark.parametrize("sets, words", [
    (["head=lm(tied=false)"], "its LM head is untied, with a bias"),
    (["decoder.qkv_bias=true"], "q, k, v and out_proj without bias"),
    (["embed.pos=rope(500000, fraction=0.25, interleaved=true, max_len=2048)"], "its RoPE has θ 10000"),
])
def test_a_spec_gptj_cannot_hold_is_refused(tmp_path, sets, words):
    r, out = hf_ref.exported(tmp_path, "gpt_j_6b", ["L=2", "d=64", "h=4", "d_ff=128", "vocab=100", *sets])
    assert r.exit_code == 2 and words in r.output, r.output
    assert not out.exists()


@pytest.mark.parametrize("key, value, words", [
    ("rotary_dim", 7, "rotary_dim 7 must be even and at most the head size 16"),
    ("tie_word_embeddings", True, "GPT-J's head keeps its own bias"),
])
def test_a_gptj_config_graphspec_cannot_build_is_refused_at_its_key(tmp_path, key, value, words):
    cfg = transformers.GPTJConfig(**{**SMALL, key: value})
    (tmp_path / "config.json").write_text(cfg.to_json_string(), encoding="utf-8")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "config.json:" in r.output and words in r.output and not (tmp_path / "s.yaml").exists(), r.output


def test_a_rotary_share_that_floats_round_is_its_whole_count(tmp_path):
    """rotary_dim 30 of a 44-wide head: 30/44 · 44 is 29.999999999999996 in floats, and the import
    is HF's model (its count, and its logits)."""
    cfg, cls, _, path = imported(tmp_path, "ForCausalLM", n_embd=88, rotary_dim=30)
    m = graphspec.load(path, ["seq_len=12", "batch=2"])
    assert m.params() == n_params(meta(cls, cfg))
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, _ = generated(m)
    net.load_state_dict(to_graphspec(hf, graph, "gptj"), strict=True)
    with torch.no_grad():
        assert rel_err(net(ids()), hf(input_ids=ids()).logits) < RTOL


def test_a_tied_config_without_an_lm_head_imports(tmp_path):
    cfg, cls, text, path = imported(tmp_path, "ForSequenceClassification", tie_word_embeddings=True)
    assert graphspec.load(path).params() == n_params(meta(cls, cfg))


def test_old_checkpoints_causal_mask_buffers_are_left_out(tmp_path):
    """transformer.h.{i}.attn.bias / masked_bias (older GPT-J files; HF ignores them on load)."""
    from safetensors.torch import save_file

    cfg, cls, _, path = imported(tmp_path, "ForCausalLM")
    hf = hf_ref.random_hf(cls, cfg)
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    for i in range(2):
        sd[f"transformer.h.{i}.attn.bias"] = torch.ones(1, 1, 40, 40, dtype=torch.bool).tril()
        sd[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e9)
    save_file(sd, str(tmp_path / "old.safetensors"))
    r = CliRunner().invoke(main, ["import-weights", str(path), str(tmp_path / "old.safetensors"), "-o",
                                  str(tmp_path / "w.safetensors")])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
