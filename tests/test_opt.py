"""OPT (Zhang et al. 2022): GPT-2's pre-norm decoder with separate q, k, v, ReLU, a tied head and
positions offset by 2, `pos=learned(max_len + 2, padding_idx=1)`: HF's OPTLearnedPositionalEmbedding
counts them from the attention mask, which for a batch padded with id 1 (the tokenizer's mask)
gives the same positions. References: Hugging Face's OPT* classes from small OPTConfig objects
with random (perturbed) weights: parameters on the meta device, MACs by FlopCounterMode, logits
of the generated module (unpadded, and right-padded with HF given the tokenizer's mask), ONNX
and TVM, `graphspec import`, `export --format hf` and `import-weights`, and located errors."""

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
SMALL = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=2,
             max_position_embeddings=40, num_labels=3)
TASKS = {"ForCausalLM": "lm(tied=true)", "Model": "none",
         "ForSequenceClassification": "classifier(3, pool=last, bias=false, pad_token_id=1)",
         "ForQuestionAnswering": "span"}


def imported(tmp_path, task, **kw):
    cls = "OPT" + task
    cfg = transformers.OPTConfig(**{**SMALL, **({"num_labels": 2} if task == "ForQuestionAnswering" else {}), **kw},
                                 architectures=[cls])
    text, path = hf_ref.config_imported(tmp_path, cfg)
    return cfg, getattr(transformers, cls), text, path


def ids(seed=0):
    return torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(seed))




def test_bundled_spec_counts_as_hugging_face():
    """opt-125m: params = HF OPTForCausalLM on meta (125,239,296; Table 1's 125M, the table 2050
    rows), MACs at 128 tokens = FlopCounterMode / 2 with eager attention (the tied head's
    N·d·vocab included)."""
    from torch.utils.flop_counter import FlopCounterMode

    hf = meta(transformers.OPTForCausalLM, transformers.OPTConfig(attn_implementation="eager")).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        hf(input_ids=torch.full((1, 128), 5, dtype=torch.long, device="meta"))
    m = graphspec.load("opt_125m")
    assert m.params() == n_params(hf) == 125_239_296
    assert m.macs() == counter.get_total_flops() // 2 == 12 * (12 * 128 * 768**2 + 2 * 128**2 * 768) + 128 * 768 * 50272


@pytest.mark.parametrize("task", sorted(TASKS))
def test_imported_model_computes_hugging_faces_outputs(tmp_path, task):
    cfg, cls, text, path = imported(tmp_path, task)
    assert "vars: vocab=100, d=32, L=2, h=2, d_ff=64, n_pos=42," in text
    assert "pos=learned(n_pos, padding_idx=1)" in text and text.endswith(f"head: {TASKS[task]}\n"), text
    m = graphspec.load(path, ["seq_len=12", "batch=2"])
    assert m.params() == n_params(meta(cls, cfg))
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, _ = generated(m, "default")
    net.load_state_dict(to_graphspec(hf, graph, "opt"), strict=True)
    with torch.no_grad():
        got, want = our_outputs(net(ids()), task), task_outputs(hf(input_ids=ids()), task)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and rel_err(g, w) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "opt", hf) == []


def test_right_padded_rows_read_hugging_faces_positions(tmp_path):
    """A right-padded row (pad id 1) with HF given the tokenizer's attention mask: the tokens
    before the padding see no padding (causal attention), so their logits are HF's, and the
    sequence classifier reads HF's last token; positions 2.. whatever the padding (no skipping)
    are as exact on the unpadded row only."""
    cfg, cls, _, path = imported(tmp_path, "ForCausalLM")
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2"]))
    net.load_state_dict(to_graphspec(hf, graph, "opt"), strict=True)
    x = ids(1)
    x[0, 8:] = 1
    with torch.no_grad():
        got, want = net(x), hf(input_ids=x, attention_mask=(x != 1).long()).logits
    assert rel_err(got[0, :8], want[0, :8]) < RTOL and rel_err(got[1], want[1]) < RTOL
    cfg, cls, _, path = imported(tmp_path, "ForSequenceClassification")
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2"]))
    net.load_state_dict(to_graphspec(hf, graph, "opt"), strict=True)
    with torch.no_grad():
        assert rel_err(net(x), hf(input_ids=x, attention_mask=(x != 1).long()).logits) < RTOL
        plain = hf(input_ids=x[:, :8]).logits  # HF's positions without a mask are 2.. as well
        assert rel_err(net(x)[0], plain[0]) < RTOL


def test_the_offset_matters(tmp_path):
    """The comparisons above can fail: positions from 0 on the same table are far off."""
    cfg, cls, _, path = imported(tmp_path, "ForCausalLM")
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2", "embed.pos=learned(n_pos)"]))
    net.load_state_dict(to_graphspec(hf, graph, "opt"), strict=True)
    with torch.no_grad():
        assert rel_err(net(ids(2)), hf(input_ids=ids(2)).logits) > 1e-2


def test_onnx_and_tvm_compute_hugging_faces_logits(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    cfg, cls, _, path = imported(tmp_path, "ForCausalLM")
    hf = hf_ref.random_hf(cls, cfg)
    errors = hf_ref.hf_backend_errors(hf, graphspec.load(path, ["seq_len=12", "batch=2"]), ids(3), "opt")
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("task, kw", [(t, {}) for t in sorted(TASKS)]
                         + [("ForCausalLM", {"enable_bias": False, "tie_word_embeddings": False})])
def test_exported_weights_load_into_hugging_face_and_back(tmp_path, task, kw):
    _, cls, _, path = imported(tmp_path, task, **kw)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2"]), "default")
    hf_ref.perturbed(net, seed=4)
    hf, out = hf_ref.export_and_load(tmp_path, path, net, cls)
    assert (out["model_type"], out["architectures"], out["max_position_embeddings"], out["pad_token_id"]) == (
        "opt", [cls.__name__], 40, 1)
    with torch.no_grad():
        got, want = our_outputs(net(ids(5)), task), task_outputs(hf(input_ids=ids(5)), task)
    assert all(rel_err(g, w) < RTOL for g, w in zip(got, want, strict=True))
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


@pytest.mark.parametrize("key, value, words", [
    ("do_layer_norm_before", False, "OPT's post-norm layers (opt-350m)"),
    ("word_embed_proj_dim", 16, "project_in and project_out around the decoder"),
    ("pad_token_id", 0, "OPT's positions start at 2 whatever the pad id"),
])
def test_an_opt_config_graphspec_cannot_build_is_refused_at_its_key(tmp_path, key, value, words):
    cfg = transformers.OPTConfig(**SMALL, **{key: value})
    (tmp_path / "config.json").write_text(cfg.to_json_string(), encoding="utf-8")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "config.json:" in r.output and words in r.output and not (tmp_path / "s.yaml").exists(), r.output


def test_a_classifier_opt_has_no_class_for_is_refused(tmp_path):
    r, out = hf_ref.exported(tmp_path, "opt_125m", ["L=2", "head=classifier(3, pool=mean, bias=false)"])
    assert r.exit_code == 2 and "its sequence classifier is `score` without bias on the last token" in r.output
    assert not out.exists()


def test_no_dropout_after_the_embeddings_and_the_pad_id_is_checked_at_export(tmp_path):
    """OPTDecoder adds the positions and goes into the layers (no embedding dropout); a sequence
    classifier whose pad id is not OPT's 1 is refused by name."""
    _, _, text, path = imported(tmp_path, "ForCausalLM")
    assert "embed: tokens(vocab, dim=d, pos=learned(n_pos, padding_idx=1))\n" in text
    assert not any(n.op == "dropout" and n.name.startswith("embed") for n in graphspec.load("opt_125m").graph)
    r, out = hf_ref.exported(tmp_path, "opt_125m", ["L=2", "head=classifier(3, pool=last, bias=false, pad_token_id=5)"])
    assert r.exit_code == 2 and "OPT's pad id is 1" in r.output and not out.exists(), r.output
