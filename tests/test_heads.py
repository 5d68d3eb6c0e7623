"""Heads as vocabulary constructs (graphspec/vocab/heads.py), BERT's masked-LM head `mlm` and
T5's scaled tied head `lm(tied=true, scale=d_model**-0.5)`, against Hugging Face models built
from small Config objects with random (perturbed) weights: parameter counts on the meta device,
logits with graphspec's weight map (both ways), `export --format hf` and `import-weights`, and
located errors for bad head arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from safetensors.torch import load_file

import graphspec
from graphspec.interchange import from_hf_config
from graphspec.vocab.registry import KINDS
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402

SMALL_T5, generated, hf_logits_error, meta = hf_ref.SMALL_T5, hf_ref.generated, hf_ref.hf_logits_error, hf_ref.meta
n_params, random_hf, rel_err, round_trip_mismatches = (hf_ref.n_params, hf_ref.random_hf, hf_ref.rel_err,
                                                       hf_ref.round_trip_mismatches)

SMALL_BERT = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=32, type_vocab_size=2, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)


def imported(tmp_path, cfg, name="s.yaml"):
    """`cfg` written by to_json_file and imported: (the spec text, the loaded model)."""
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    text = from_hf_config(json.loads(path.read_text()))
    (tmp_path / name).write_text(text)
    return text, graphspec.load(tmp_path / name)


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def test_every_head_is_a_construct():
    """The heads the spec DSL had as a closed list, and the two new ones, in the registry (in the
    order the "use one of" fixes list them)."""
    assert list(KINDS["head"]) == ["lm", "classifier", "span", "pooler", "none", "detection", "segmentation", "mlm",
                                  "discriminator", "map"]
    assert KINDS["head"]["lm"].signature() == "lm(tied=true, bias=false, softcap=none, scale=none)"
    assert KINDS["head"]["mlm"].signature() == "mlm(act=gelu, eps=1e-12, tied=true, nsp=false, bias=true)"
    assert "mlm(act=gelu, eps=1e-12, tied=true, nsp=false, bias=true)" in (Path(__file__).parents[1] / "docs/spec_dsl.md").read_text()


# -- BERT's masked-LM head -------------------------------------------------------------------------
def test_mlm_params_equal_bert_for_masked_lm(tmp_path):
    """vocab 60, d 32: BertModel without its pooler + transform dense d·d + d, LayerNorm 2d, bias vocab;
    the decoder is the word embedding (counted once, as HF's parameters() yields it)."""
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertForMaskedLM"])
    text, m = imported(tmp_path, cfg)
    assert text.endswith("head: mlm(gelu, eps=1e-12)\n")
    base = n_params(meta(transformers.BertModel, cfg)) - (32 * 32 + 32)  # BertModel's pooler
    assert m.params() == base + 32 * 32 + 32 + 2 * 32 + 60 == n_params(meta(transformers.BertForMaskedLM, cfg))
    # head MACs at N = 32: dense 32·32·32 + decoder 32·32·60 (the bias add and LayerNorm: none)
    body = graphspec.load(tmp_path / "s.yaml", ["head=none"]).macs()
    assert m.macs() - body == 32 * 32 * 32 + 32 * 32 * 60 == 94_208


@pytest.mark.parametrize("passes", ["none", "default"])
def test_mlm_logits_equal_bert_for_masked_lm(tmp_path, passes):
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertForMaskedLM"], hidden_act="gelu_new",
                                  layer_norm_eps=1e-7)
    text, m = imported(tmp_path, cfg)
    assert text.endswith("head: mlm(gelu_tanh, eps=1e-07)\n")
    hf = random_hf(transformers.BertForMaskedLM, cfg)
    assert hf.cls.predictions.bias.abs().max() > 0  # perturbed: a missing bias would show
    graph, net, src = generated(m, passes)
    assert "F.linear(self.mlm(x), self.embed.tokens.weight) + self.mlm_bias" in src
    ids = torch.randint(0, 60, (2, 32), generator=torch.Generator().manual_seed(0))
    assert hf_logits_error(hf, net, graph, ids, "bert") <= 1e-5
    assert round_trip_mismatches(net, graph, "bert", hf) == []


def test_mlm_exports_as_bert_for_masked_lm_and_imports_back(tmp_path):
    """A generated module's state dict -> `export --format hf`: BertForMaskedLM.from_pretrained with
    no missing or unexpected keys gives its logits; HF's own save_pretrained file ->
    `import-weights` gives the tensors back bit for bit."""
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertForMaskedLM"])
    _, m = imported(tmp_path, cfg)
    spec = tmp_path / "s.yaml"
    torch.manual_seed(0)
    graph, net, _ = generated(m, "default")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn(p.shape))
    hf, out = hf_ref.export_and_load(tmp_path, spec, net, transformers.AutoModelForMaskedLM)
    assert out["architectures"] == ["BertForMaskedLM"]
    assert type(hf).__name__ == "BertForMaskedLM"
    ids = torch.randint(0, 60, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert rel_err(hf(input_ids=ids).logits, net(ids)) <= 1e-5
    back, mine = hf_ref.imported_weights(tmp_path, spec, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


# -- BertForPreTraining (mlm(nsp=true)) and an untied decoder (mlm(tied=false)) -------------------
def test_pretraining_head_equals_bert_for_pretraining(tmp_path):
    """BertPreTrainingHeads: the MLM head + the pooler (d·d + d) + seq_relationship (2d + 2); params =
    BertForPreTraining on meta; both outputs (B×N×vocab, B×2), in HF's order, ≤ 1e-5; names both ways."""
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertForPreTraining"])
    text, m = imported(tmp_path, cfg)
    assert text.endswith("head: mlm(gelu, eps=1e-12, nsp=true)\n")
    mlm_only = n_params(meta(transformers.BertForMaskedLM, cfg))
    assert m.params() == mlm_only + 32 * 32 + 32 + 2 * 32 + 2 == n_params(meta(transformers.BertForPreTraining, cfg))
    hf = random_hf(transformers.BertForPreTraining, cfg)
    graph, net, src = generated(m, "default")
    assert "self.seq_relationship(self.pooler(x))" in src
    net.load_state_dict(to_graphspec(hf, graph), strict=True)
    ids = torch.randint(0, 60, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, nsp = net(ids)
        want = hf(input_ids=ids)
    assert logits.shape == (2, 32, 60) and nsp.shape == (2, 2)
    assert rel_err(logits, want.prediction_logits) <= 1e-5 and rel_err(nsp, want.seq_relationship_logits) <= 1e-5
    assert round_trip_mismatches(net, graph, "bert", hf) == []
    assert {"cls.seq_relationship.weight", "bert.pooler.dense.weight"} <= set(hf.state_dict())


def _export_and_load(tmp_path, net, auto):
    """net's (perturbed) weights -> `export --format hf` -> `auto.from_pretrained`, checked for no
    missing, unexpected or mismatched keys."""
    hf_ref.perturbed(net)
    return hf_ref.export_and_load(tmp_path, tmp_path / "s.yaml", net, auto)


def test_pretraining_head_exports_as_bert_for_pretraining(tmp_path):
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertForPreTraining"])
    _, m = imported(tmp_path, cfg)
    graph, net, _ = generated(m, "default")
    hf, out = _export_and_load(tmp_path, net, transformers.AutoModelForPreTraining)
    assert type(hf).__name__ == "BertForPreTraining" and out["architectures"] == ["BertForPreTraining"]
    ids = torch.randint(0, 60, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, nsp = net(ids)
        want = hf(input_ids=ids)
    assert rel_err(logits, want.prediction_logits) <= 1e-5 and rel_err(nsp, want.seq_relationship_logits) <= 1e-5


def test_bert_for_pretraining_checkpoint_imports_end_to_end(tmp_path):
    """The other direction through the CLI: a (random) BertForPreTraining saved by HF's own
    save_pretrained -> `graphspec import` of its config.json -> `graphspec import-weights` of its
    model.safetensors -> the generated module loads them strictly and gives HF's two outputs."""
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertForPreTraining"])
    hf = random_hf(transformers.BertForPreTraining, cfg)
    hf.save_pretrained(tmp_path / "hf")
    spec = tmp_path / "s.yaml"
    assert cli("import", tmp_path / "hf" / "config.json", "-o", spec).exit_code == 0
    r = cli("import-weights", spec, tmp_path / "hf" / "model.safetensors", "-o", tmp_path / "w.safetensors",
            "--passes", "default")
    assert r.exit_code == 0, r.output
    graph, net, _ = generated(graphspec.load(spec), "default")
    net.load_state_dict(load_file(str(tmp_path / "w.safetensors")), strict=True)
    ids = torch.randint(0, 60, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits, nsp = net(ids)
        want = hf(input_ids=ids)
    assert rel_err(logits, want.prediction_logits) <= 1e-5 and rel_err(nsp, want.seq_relationship_logits) <= 1e-5


def test_untied_mlm_decoder_equals_bert_for_masked_lm(tmp_path):
    """tie_word_embeddings false: a decoder vocab×d + vocab of its own (`mlm_decoder`). HF 5.x keeps
    `cls.predictions.bias` beside `cls.predictions.decoder.bias` and never reads it (perturbing it
    leaves the logits as they are), so graphspec has vocab (60) parameters fewer; the export fills
    it with the decoder's bias, from_pretrained loads with no missing keys."""
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertForMaskedLM"], tie_word_embeddings=False)
    text, m = imported(tmp_path, cfg)
    assert text.endswith("head: mlm(gelu, eps=1e-12, tied=false)\n")
    tied = graphspec.load(tmp_path / "s.yaml", ["head.tied=true"]).params()
    assert m.params() == tied + 60 * 32 == n_params(meta(transformers.BertForMaskedLM, cfg)) - 60
    hf = random_hf(transformers.BertForMaskedLM, cfg)
    graph, net, src = generated(m, "default")
    assert "self.mlm_decoder(self.mlm(x))" in src and "mlm_bias" not in src
    ids = torch.randint(0, 60, (2, 32), generator=torch.Generator().manual_seed(0))
    assert hf_logits_error(hf, net, graph, ids, "bert") <= 1e-5
    with torch.no_grad():
        before = hf(input_ids=ids).logits
        hf.cls.predictions.bias.add_(1.0)
        assert torch.equal(hf(input_ids=ids).logits, before)  # the dead bias
    assert round_trip_mismatches(net, graph, "bert", hf) == ["cls.predictions.bias"]
    hf2, out = _export_and_load(tmp_path, net, transformers.AutoModelForMaskedLM)
    assert out["tie_word_embeddings"] is False and type(hf2).__name__ == "BertForMaskedLM"
    with torch.no_grad():
        assert rel_err(hf2(input_ids=ids).logits, net(ids)) <= 1e-5


def test_causal_bert_equals_bert_lm_head_model(tmp_path):
    """BertLMHeadModel (is_decoder: causal self-attention, BertOnlyMLMHead, no pooler) imports as
    `attention: causal` + `mlm`: params = HF meta, logits ≤ 1e-5 (the bidirectional BertForMaskedLM
    with the same weights is 2.1e-2 off), export writes is_decoder and loads with no missing keys."""
    cfg = transformers.BertConfig(**SMALL_BERT, architectures=["BertLMHeadModel"], is_decoder=True)
    text, m = imported(tmp_path, cfg)
    assert "  attention: causal\n" in text and text.endswith("head: mlm(gelu, eps=1e-12)\n")
    assert m.params() == n_params(meta(transformers.BertLMHeadModel, cfg))
    hf = random_hf(transformers.BertLMHeadModel, cfg)
    graph, net, _ = generated(m, "default")
    ids = torch.randint(0, 60, (2, 32), generator=torch.Generator().manual_seed(0))
    assert hf_logits_error(hf, net, graph, ids, "bert") <= 1e-5
    bidir = transformers.BertForMaskedLM(transformers.BertConfig(**SMALL_BERT)).eval()
    bidir.load_state_dict(hf.state_dict())
    with torch.no_grad():
        assert rel_err(bidir(input_ids=ids).logits, hf(input_ids=ids).logits) > 1e-3  # causality matters (2.1e-2)
    assert round_trip_mismatches(net, graph, "bert", hf) == []
    hf2, out = _export_and_load(tmp_path, net, transformers.AutoModelForCausalLM)
    assert out["is_decoder"] is True and type(hf2).__name__ == "BertLMHeadModel"
    with torch.no_grad():
        assert rel_err(hf2(input_ids=ids).logits, net(ids)) <= 1e-5


# -- T5's scaled tied head ------------------------------------------------------------------------
def test_t5_scaled_head_equals_t5_for_conditional_generation(tmp_path):
    """scale_decoder_outputs (T5Config's default with tied embeddings): decoder output · d_model^-0.5,
    then the shared embedding. Params = HF on meta; logits with decoder_input_ids ≤ 1e-5; MACs of
    the head: T·d·vocab (the scale is elementwise: 0 under `macs`, T·d under `all`)."""
    cfg = transformers.T5Config(**SMALL_T5, architectures=["T5ForConditionalGeneration"])
    assert cfg.scale_decoder_outputs
    text, m = imported(tmp_path, cfg)
    assert text.endswith("head: lm(tied=true, scale=d_model**-0.5)\n")
    assert m.params() == n_params(meta(transformers.T5ForConditionalGeneration, cfg))
    scale = next(n for n in m.graph if n.op == "scale" and n.name == "lm_scale")
    assert scale.a["k"] == 32**-0.5
    T = m.spec.input.tgt_len  # 128
    body = graphspec.load(tmp_path / "s.yaml", ["head=none"])
    assert m.macs() - body.macs() == T * 32 * 100 == 409_600
    assert m.macs("all") - body.macs("all") == T * 32 * 100 + T * 32
    hf = random_hf(transformers.T5ForConditionalGeneration, cfg)
    graph, net, src = generated(graphspec.load(tmp_path / "s.yaml", ["seq_len=20", "tgt_len=13"]), "default")
    assert "* 32 ** -0.5" in src  # d_model ** -0.5, not the literal 0.1767766952966369
    net.load_state_dict(to_graphspec(hf, graph), strict=True)
    g = torch.Generator().manual_seed(0)
    ids, tgt = torch.randint(0, 100, (2, 20), generator=g), torch.randint(0, 100, (2, 13), generator=g)
    with torch.no_grad():
        want = hf(input_ids=ids, decoder_input_ids=tgt).logits
        assert rel_err(net(ids, tgt), want) <= 1e-5
        unscaled = transformers.T5ForConditionalGeneration(
            transformers.T5Config(**SMALL_T5, scale_decoder_outputs=False)).eval()
        unscaled.load_state_dict(hf.state_dict())
        assert rel_err(unscaled(input_ids=ids, decoder_input_ids=tgt).logits, want) > 0.5  # the scale matters
    assert round_trip_mismatches(net, graph, "t5", hf) == []


def test_t5_scaled_head_exports_as_t5_for_conditional_generation(tmp_path):
    cfg = transformers.T5Config(**SMALL_T5, architectures=["T5ForConditionalGeneration"])
    imported(tmp_path, cfg)
    r = cli("export", tmp_path / "s.yaml", "--format", "hf", "-o", tmp_path / "hf")
    assert r.exit_code == 0, r.output
    out = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert out["architectures"] == ["T5ForConditionalGeneration"] and out["scale_decoder_outputs"] is True


# -- bad head arguments: located, exit 2 ----------------------------------------------------------
SPEC = """\
name: s
vars: d=32
input: tokens(16)
embed: tokens(100, dim=d)
encoder×1: {dim: d, heads: 2}
head: HEAD
"""


@pytest.mark.parametrize("head,message,fix", [
    ("mlm(eps=-1)", "eps must be ≥ 0, got -1", ""),
    ("mlm(swiglu)", "mlm() argument `act` 'swiglu': a gated MLP, not an activation", "write `mlp: glu(d_ff, silu)`"),
    ("mlm(gelu, 1e-12, true, false, true, 3)",
     "mlm() takes at most 5 positional arguments (act, eps, tied, nsp, bias), got 6", ""),
    ("mlm(nsp=2)", "nsp must be bool, got 2", ""),
    ("mlm(tied=maybe)", "undefined variable 'maybe' (for tied)", ""),
    ("mlm(nsp=true, pool=mean)", "mlm() has no argument 'pool'", ""),
    ("mlm(epsilon=1e-12)", "mlm() has no argument 'epsilon'", "did you mean 'eps'?"),
    ("lm(scale=dd**-0.5)", "'dd' is not a number in 'lm(scale=dd**-0.5)'", ""),
    ("lm(scale=true)", "scale must be float, got true", "write a float value"),
    ("lm(tied=true, bias=true, scale=d**-0.5)", "a tied LM head has no bias of its own", "write lm(tied=false, bias=true)"),
    ("mlmm", "unknown head 'mlmm'", "did you mean 'mlm'?"),
])
def test_bad_head_argument_is_located_exit_2(tmp_path, monkeypatch, head, message, fix):
    (tmp_path / "s.yaml").write_text(SPEC.replace("HEAD", head))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "s.yaml:6:" in r.output and "error: " in r.output and message in r.output, r.output
    assert fix in r.output
