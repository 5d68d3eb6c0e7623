"""DistilBERT (Sanh et al. 2019): BERT's post-norm blocks without token types or pooler; its
sequence classifier `classifier(n, pool=cls, transform=relu, transform_norm=false)` (HF's
pre_classifier, ReLU, classifier on [CLS]). References: Hugging Face's DistilBert* classes from
small DistilBertConfig objects with random (perturbed) weights: parameters on the meta device,
MACs by FlopCounterMode, outputs of the generated module, ONNX and TVM, `graphspec import`,
`export --format hf` and `import-weights`, and located errors."""

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
SMALL = dict(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=40, num_labels=3,
             activation="gelu")
TASKS = {"Model": "none", "ForMaskedLM": "mlm(gelu, eps=1e-12)",
         "ForSequenceClassification": "classifier(3, pool=cls, transform=relu, transform_norm=false)",
         "ForTokenClassification": "classifier(3, pool=tokens)", "ForQuestionAnswering": "span"}


def imported(tmp_path, task, **kw):
    cls = "DistilBert" + task
    cfg = transformers.DistilBertConfig(**{**SMALL, **({"num_labels": 2} if task == "ForQuestionAnswering" else {}),
                                           **kw}, architectures=[cls])
    text, path = hf_ref.config_imported(tmp_path, cfg)
    return cfg, getattr(transformers, cls), text, path


def ids(seed=0):
    return torch.randint(1, 100, (2, 12), generator=torch.Generator().manual_seed(seed))




def test_bundled_spec_counts_as_hugging_face():
    """distilbert-base: params = HF DistilBertModel on meta (66,362,880; Table 3's 66M), MACs at
    128 tokens = FlopCounterMode / 2 with eager attention = half BERT-base's blocks."""
    from torch.utils.flop_counter import FlopCounterMode

    hf = meta(transformers.DistilBertModel, transformers.DistilBertConfig(attn_implementation="eager")).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        hf(input_ids=torch.full((1, 128), 5, dtype=torch.long, device="meta"))
    m = graphspec.load("distilbert_base")
    assert m.params() == n_params(hf) == 66_362_880
    assert m.macs() == counter.get_total_flops() // 2 == 6 * (12 * 128 * 768**2 + 2 * 128**2 * 768)


@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_imported_model_computes_hugging_faces_outputs(tmp_path, task, passes):
    cfg, cls, text, path = imported(tmp_path, task)
    assert "embed: tokens(vocab, dim=D, pos=learned(max_len), norm=true, eps=1e-12, dropout=0.1)" in text
    assert text.endswith(f"head: {TASKS[task]}\n"), text
    m = graphspec.load(path, ["seq_len=12", "batch=2"])
    assert m.params() == n_params(meta(cls, cfg))
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, src = generated(m, passes)
    net.load_state_dict(to_graphspec(hf, graph, "distilbert"), strict=True)
    with torch.no_grad():
        got, want = our_outputs(net(ids()), task), task_outputs(hf(input_ids=ids()), task)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and rel_err(g, w) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "distilbert", hf) == []
    if task == "ForSequenceClassification":
        assert "class PreClassifier(nn.Module)" in src and "return F.relu(self.dense(x))" in src


def test_the_pre_classifier_matters(tmp_path):
    """The comparison above can fail: the same weights without the pre-classifier's ReLU (a gelu),
    or with BERT's tanh pooler, are far off."""
    cfg, cls, _, path = imported(tmp_path, "ForSequenceClassification")
    hf = hf_ref.random_hf(cls, cfg)
    with torch.no_grad():
        want = hf(input_ids=ids(1)).logits
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2", "head.transform=gelu"]))
    net.load_state_dict(to_graphspec(hf, graph, "distilbert"), strict=True)
    with torch.no_grad():
        assert rel_err(net(ids(1)), want) > 1e-2


def test_onnx_and_tvm_compute_hugging_faces_logits(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    cfg, cls, _, path = imported(tmp_path, "ForSequenceClassification")
    hf = hf_ref.random_hf(cls, cfg)
    errors = hf_ref.hf_backend_errors(hf, graphspec.load(path, ["seq_len=12", "batch=2"]), ids(2), "distilbert")
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("task", sorted(TASKS))
def test_exported_weights_load_into_hugging_face_and_back(tmp_path, task):
    _, cls, _, path = imported(tmp_path, task)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2"]), "default")
    hf_ref.perturbed(net, seed=4)
    hf, out = hf_ref.export_and_load(tmp_path, path, net, cls)
    assert (out["model_type"], out["architectures"]) == ("distilbert", [cls.__name__])
    with torch.no_grad():
        got, want = our_outputs(net(ids(5)), task), task_outputs(hf(input_ids=ids(5)), task)
    assert all(rel_err(g, w) < RTOL for g, w in zip(got, want, strict=True))
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


@pytest.mark.parametrize("sets, words", [
    (["head=classifier(3, pool=cls)"], "its sequence classifier is pre_classifier, ReLU and classifier on [CLS]"),
    (["head=classifier(3, pool=cls, transform=relu)"], "its sequence classifier is pre_classifier"),
    (["head=mlm(relu, eps=1e-12)"], "its MLM head is vocab_transform, the blocks' activation"),
    (["head=none", "encoder.eps=1e-6"], "its LayerNorms' ε is 1e-12"),
])
def test_a_spec_distilbert_cannot_hold_is_refused(tmp_path, sets, words):
    r, out = hf_ref.exported(tmp_path, "distilbert_base", ["L=2", *sets])
    assert r.exit_code == 2 and words in r.output, r.output
    assert not out.exists()


def test_sinusoidal_positions_are_refused_at_their_key(tmp_path):
    cfg = transformers.DistilBertConfig(**SMALL, sinusoidal_pos_embds=True)
    (tmp_path / "config.json").write_text(cfg.to_json_string(), encoding="utf-8")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "config.json:" in r.output and "sinusoidal_pos_embds" in r.output and not (tmp_path / "s.yaml").exists()


@pytest.mark.parametrize("head, message", [
    ("classifier(3, transform_norm=false)", "transform_norm= sets the transform before the classifier, and this "
     "head has none"),
    ("classifier(3, transform=relu, transform_norm=false, eps=1e-5)", "transform_norm=false leaves the LayerNorm out"),
])
def test_bad_transform_norm_is_located_exit_2(tmp_path, monkeypatch, head, message):
    (tmp_path / "s.yaml").write_text("name: s\ninput: tokens(16)\nembed: tokens(100, dim=32)\n"
                                     f"encoder×1: {{dim: 32, heads: 2}}\nhead: {head}\n")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "s.yaml:5:" in r.output and message in r.output, r.output
