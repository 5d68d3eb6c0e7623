"""RoBERTa and XLM-R: BERT with fairseq's positions, `pos=learned(max_len, padding_idx=P)`, which
count the tokens that are not padding from P + 1 (padding reads row P), so a padded row reads
the positions its unpadded tokens would. References: Hugging Face's Roberta* and XLMRoberta*
classes from small Config objects with random (perturbed) weights, on batches with right, left
and all padding: parameters on the meta device, MACs by FlopCounterMode, logits through the
generated module, the IR interpreter, ONNX and TVM, `graphspec import`, `export --format hf` and
`import-weights`, and located errors."""

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
SMALL = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=40, type_vocab_size=1, num_labels=3, hidden_act="gelu_new")
# task -> the head `graphspec import` writes (RobertaLMHead's activation is gelu whatever hidden_act says)
TASKS = {"Model": "pooler", "ForMaskedLM": "mlm(gelu, eps=1e-12)", "ForCausalLM": "mlm(gelu, eps=1e-12)",
         "ForSequenceClassification": "classifier(3, pool=pooler)",
         "ForTokenClassification": "classifier(3, pool=tokens)", "ForQuestionAnswering": "span"}
PREFIXES = {"Roberta": "RobertaConfig", "XLMRoberta": "XLMRobertaConfig", "Camembert": "CamembertConfig"}


def imported(tmp_path, prefix, task, **kw):
    cls = prefix + task
    qa, causal = {"num_labels": 2} if task == "ForQuestionAnswering" else {}, {"is_decoder": task == "ForCausalLM"}
    cfg = getattr(transformers, PREFIXES[prefix])(**{**SMALL, **qa, **causal, **kw}, architectures=[cls])
    text, path = hf_ref.config_imported(tmp_path, cfg)
    return cfg, getattr(transformers, cls), text, path


def padded(seed=0):
    """Token ids (4, 12), pad id 1: right-padded, left-padded, all padding, none."""
    x = torch.randint(3, 100, (4, 12), generator=torch.Generator().manual_seed(seed))
    x[0, 7:], x[1, :3], x[2] = 1, 1, 1
    return x




# -- counts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls, cfg_cls, vocab", [
    ("roberta_base", "RobertaModel", "RobertaConfig", 50265),
    ("xlm_roberta_base", "XLMRobertaModel", "XLMRobertaConfig", 250002)])
def test_bundled_specs_count_as_hugging_face(name, cls, cfg_cls, vocab):
    """The released configs (514 positions, one token type, eps 1e-5): params = HF on meta
    (124,645,632: fairseq's 125M; 278,043,648: XLM-R Table 7's 270M), MACs at 128 tokens =
    FlopCounterMode / 2 on HF's model with eager attention = BERT-base's."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = getattr(transformers, cfg_cls)(vocab_size=vocab, max_position_embeddings=514, type_vocab_size=1,
                                         layer_norm_eps=1e-5, attn_implementation="eager")
    hf = meta(getattr(transformers, cls), cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        hf(input_ids=torch.full((1, 128), 5, dtype=torch.long, device="meta"))
    m = graphspec.load(name)
    assert m.params() == n_params(hf) == (vocab + 514 + 1) * 768 + 2 * 768 + graphspec.load(
        "bert_base").params() - graphspec.load("bert_base", ["head=none"]).params() + 12 * (
        4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768)
    assert m.macs() == counter.get_total_flops() // 2 == graphspec.load("bert_base").macs()


# -- logits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_imported_model_computes_hugging_faces_outputs_on_padded_rows(tmp_path, prefix, task):
    cfg, cls, text, path = imported(tmp_path, prefix, task)
    assert "pos=learned(max_len, padding_idx=1), types=1" in text
    assert text.endswith(f"head: {TASKS[task]}\n"), text
    m = graphspec.load(path, ["seq_len=12", "batch=4"])
    assert m.params() == n_params(meta(cls, cfg))
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, src = generated(m, "default")
    net.load_state_dict(to_graphspec(hf, graph, "roberta"), strict=True)
    x = padded()
    with torch.no_grad():
        got, want = our_outputs(net(x), task), task_outputs(hf(input_ids=x), task, "pooler_output")
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and rel_err(g, w) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "roberta", hf) == []
    assert "positions = (ids != 1).cumsum(1) * (ids != 1) + 1  # padding keeps position 1" in src


def test_the_positions_skip_padding(tmp_path):
    """The comparisons above can fail: BERT's positions 0..N−1 (the same weights, the same table)
    are far off on every row, and positions from 2 whatever the padding are exact on the unpadded
    row only (with no attention mask, the pad tokens' positions reach every token)."""
    cfg, cls, _, path = imported(tmp_path, "Roberta", "ForTokenClassification")
    hf = hf_ref.random_hf(cls, cfg)
    x = padded(1)
    with torch.no_grad():
        want = hf(input_ids=x).logits
        graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=4", "embed.pos=learned(max_len)"]))
        net.load_state_dict(to_graphspec(hf, graph, "roberta"), strict=True)
        assert min(rel_err(net(x)[i], want[i]) for i in range(4)) > 1e-2
        shifted = hf(input_ids=x, position_ids=torch.arange(2, 14).expand(4, -1)).logits
    assert rel_err(shifted[3], want[3]) < RTOL
    assert rel_err(shifted[0], want[0]) > 1e-3 and rel_err(shifted[1], want[1]) > 1e-3


def test_interpreter_onnx_and_tvm_compute_hugging_faces_logits(tmp_path):
    cfg, cls, _, path = imported(tmp_path, "Roberta", "ForSequenceClassification")
    hf = hf_ref.random_hf(cls, cfg)
    m = graphspec.load(path, ["seq_len=12", "batch=4"])
    x = padded(2)
    assert hf_ref.hf_interpreter_error(hf, m.graph, x, "roberta") < RTOL
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    errors = hf_ref.hf_backend_errors(hf, m, x, "roberta")  # ONNX CumSum, Relax cumsum
    assert max(errors.values()) < 1e-4, errors


# -- export and import-weights --------------------------------------------------------------------
@pytest.mark.parametrize("task", sorted(TASKS))
def test_exported_weights_load_into_hugging_face_and_back(tmp_path, task):
    """Generated module (perturbed) -> `export --format hf --weights`: the Roberta class loads it
    with no missing or unexpected keys (pad_token_id 1) and computes the same outputs on padded
    rows; its save_pretrained -> `import-weights` gives the tensors back bit for bit."""
    _, cls, _, path = imported(tmp_path, "Roberta", task)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=4"]), "default")
    hf_ref.perturbed(net, seed=4)
    hf, out = hf_ref.export_and_load(tmp_path, path, net, cls)
    assert (out["model_type"], out["architectures"], out["pad_token_id"]) == ("roberta", [cls.__name__], 1)
    x = padded(5)
    with torch.no_grad():
        got, want = our_outputs(net(x), task), task_outputs(hf(input_ids=x), task, "pooler_output")
    assert all(rel_err(g, w) < RTOL for g, w in zip(got, want, strict=True))
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


def test_an_untied_lm_head_exports_and_imports(tmp_path):
    """tie_word_embeddings false: a decoder of its own, whose bias HF no longer shares with
    lm_head.bias, which it keeps and never reads (100 parameters graphspec does not count; export
    writes the decoder's bias there)."""
    cfg, cls, text, path = imported(tmp_path, "Roberta", "ForMaskedLM", tie_word_embeddings=False)
    assert text.endswith("head: mlm(gelu, eps=1e-12, tied=false)\n")
    assert graphspec.load(path).params() == n_params(meta(cls, cfg)) - cfg.vocab_size
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=4"]), "default")
    hf_ref.perturbed(net, seed=6)
    hf, _ = hf_ref.export_and_load(tmp_path, path, net, cls)
    with torch.no_grad():
        assert rel_err(net(padded(7)), hf(input_ids=padded(7)).logits) < RTOL


@pytest.mark.parametrize("head, words", [
    ("mlm(relu, eps=1e-5)", "RoBERTa's LM head is dense, gelu, LayerNorm"),
    ("mlm(gelu, eps=1e-5, nsp=true)", "without a next-sentence head"),
])
def test_a_head_roberta_has_no_class_for_is_refused(tmp_path, head, words):
    r, out = hf_ref.exported(tmp_path, "roberta_base", ["L=2", f"head={head}"])
    assert r.exit_code == 2 and words in r.output, r.output
    assert not out.exists()


# -- bad specs and configs: located, exit 2 -------------------------------------------------------
SPEC = """\
name: s
input: INPUT
embed: EMBED
encoder×1: {dim: 32, heads: 2}
DECODERhead: none
"""


@pytest.mark.parametrize("inp, embed, line, message, fix", [
    ("tokens(16)", "tokens(100, dim=32, pos=learned(2, padding_idx=1))", 3,
     "positions start after padding_idx=1, and the table has 2 rows", "learned(514, padding_idx=1)"),
    ("tokens(16)", "tokens(100, dim=32, pos=learned(16, padding_idx=1))", 2,
     "seq_len 16 exceeds the learned position table (16 rows, positions from padding_idx + 1 = 2: room for 14",
     "use seq_len ≤ 14"),
    ("tokens(16)", "tokens(100, dim=32, pos=learned(64, padding_idx=-1))", 3, "argument `padding_idx` must be ≥ 0, got -1", ""),
    ("tokens(16)", "tokens(100, dim=32, pos=learned(300, padding_idx=150))", 3,
     "padding_idx=150 is the pad token's id, and the vocabulary has 100 tokens", "write a padding_idx below 100"),
    ("tokens(16, tgt_len=39)", "tokens(100, dim=32, pos=learned(40, padding_idx=1))", 2,
     "tgt_len 39 exceeds the learned position table (40 rows, positions from padding_idx + 1 = 2: room for 38",
     "use tgt_len ≤ 38"),
    ("image(32)", "patches(8, dim=32, pos=learned(padding_idx=1))", 3,
     "padding_idx= counts the tokens that are not padding, and patches have no token ids", "leave padding_idx out"),
])
def test_bad_padding_idx_is_located_exit_2(tmp_path, monkeypatch, inp, embed, line, message, fix):
    decoder = "decoder×1: {dim: 32, heads: 2, cross: true}\n" if "tgt_len" in inp else ""
    (tmp_path / "s.yaml").write_text(SPEC.replace("INPUT", inp).replace("EMBED", embed).replace("DECODER", decoder))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"s.yaml:{line}:" in r.output and message in r.output and fix in r.output, r.output


def test_a_pad_token_id_past_the_position_table_is_refused_at_its_key(tmp_path):
    cfg = transformers.RobertaConfig(**SMALL, pad_token_id=39)
    (tmp_path / "config.json").write_text(cfg.to_json_string(), encoding="utf-8")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "config.json:" in r.output and "pad_token_id 39" in r.output and not (tmp_path / "s.yaml").exists()


def test_a_sequence_classifier_reads_classifier_dense_beside_a_stale_pooler(tmp_path):
    """A RobertaForSequenceClassification state dict that also holds roberta.pooler.* (HF ignores it):
    the head's dense is classifier.dense, the tensor HF reads."""
    cfg, cls, _, path = imported(tmp_path, "Roberta", "ForSequenceClassification")
    hf = hf_ref.random_hf(cls, cfg)
    state = dict(hf.state_dict())
    state["roberta.pooler.dense.weight"] = torch.zeros(32, 32)
    state["roberta.pooler.dense.bias"] = torch.zeros(32)
    graph, _, _ = generated(graphspec.load(path, ["seq_len=12", "batch=4"]))
    sd = to_graphspec(state, graph, "roberta")
    assert torch.equal(sd["pooler.dense.weight"], hf.classifier.dense.weight)
