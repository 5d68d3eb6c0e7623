"""ELECTRA (Clark et al. 2020): `tokens(..., dim=E, proj=H)`, the embedding E wide projected to the
encoder's H, and `head: discriminator(act)`, replaced-token detection (one logit per token); the
generator's MLM head maps H -> E and decodes through the E-wide table. References: Hugging Face's
Electra* classes from small ElectraConfig objects with random (perturbed) weights, with and
without the projection: parameters on the meta device, MACs by FlopCounterMode, outputs of the
generated module, ONNX and TVM, `graphspec import`, `export --format hf` and `import-weights`,
and located errors."""

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
SMALL = dict(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, max_position_embeddings=40, num_labels=3, hidden_act="gelu_new")
TASKS = {"Model": "none", "ForPreTraining": "discriminator(gelu_tanh)", "ForMaskedLM": "mlm(gelu, eps=1e-12)",
         "ForSequenceClassification": "classifier(3, pool=cls, transform=gelu, transform_norm=false)",
         "ForTokenClassification": "classifier(3, pool=tokens)", "ForQuestionAnswering": "span"}


def imported(tmp_path, task, **kw):
    cls = "Electra" + task
    cfg = transformers.ElectraConfig(**{**SMALL, **({"num_labels": 2} if task == "ForQuestionAnswering" else {}), **kw},
                                     architectures=[cls])
    text, path = hf_ref.config_imported(tmp_path, cfg)
    return cfg, getattr(transformers, cls), text, path


def ids(seed=0):
    return torch.randint(1, 100, (2, 12), generator=torch.Generator().manual_seed(seed))




@pytest.mark.parametrize("name, kw", [
    ("electra_small", {}),
    ("electra_base", dict(embedding_size=768, hidden_size=768, num_attention_heads=12, intermediate_size=3072))])
def test_bundled_specs_count_as_hugging_faces_discriminator(name, kw):
    """ELECTRA-Small and -Base (ElectraConfig's defaults are Small's): params = HF
    ElectraForPreTraining on meta (13,549,057 and 109,483,009: Table 6's 14M and 110M), MACs at
    128 tokens = FlopCounterMode / 2 with eager attention."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = transformers.ElectraConfig(**kw, attn_implementation="eager")
    hf = meta(transformers.ElectraForPreTraining, cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        hf(input_ids=torch.full((1, 128), 5, dtype=torch.long, device="meta"))
    m = graphspec.load(name)
    assert m.params() == n_params(hf)
    assert m.macs() == counter.get_total_flops() // 2


@pytest.mark.parametrize("E", [16, 32])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_imported_model_computes_hugging_faces_outputs(tmp_path, task, E):
    cfg, cls, text, path = imported(tmp_path, task, embedding_size=E)
    assert ("dim=E" in text and ", proj=H)" in text) == (E != 32), text
    assert text.endswith(f"head: {TASKS[task]}\n"), text
    m = graphspec.load(path, ["seq_len=12", "batch=2"])
    assert m.params() == n_params(meta(cls, cfg))
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, src = generated(m, "default")
    net.load_state_dict(to_graphspec(hf, graph, "electra"), strict=True)
    with torch.no_grad():
        got, want = our_outputs(net(ids()), task), task_outputs(hf(input_ids=ids()), task)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and rel_err(g, w) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "electra", hf) == []
    if task == "ForPreTraining":
        assert "return self.discriminator(x)[..., 0]" in src


def test_the_projection_and_the_head_matter(tmp_path):
    """The comparison above can fail: the discriminator's logits with its dense's activation
    swapped (relu), and the embedding projection's weight transposed, are far off."""
    cfg, cls, _, path = imported(tmp_path, "ForPreTraining", embedding_size=32)
    hf = hf_ref.random_hf(cls, cfg)
    with torch.no_grad():
        want = hf(input_ids=ids(1)).logits
        graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2", "head=discriminator(relu)"]))
        net.load_state_dict(to_graphspec(hf, graph, "electra"), strict=True)
        assert rel_err(net(ids(1)), want) > 1e-2
    cfg, cls, _, path = imported(tmp_path, "Model")
    hf = hf_ref.random_hf(cls, cfg)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2"]))
    sd = to_graphspec(hf, graph, "electra")
    with torch.no_grad():
        sd["embed.proj.weight"] = sd["embed.proj.weight"].flip(0)
        net.load_state_dict(sd, strict=True)
        assert rel_err(net(ids(1)), hf(input_ids=ids(1)).last_hidden_state) > 1e-2


def test_onnx_and_tvm_compute_hugging_faces_logits(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    cfg, cls, _, path = imported(tmp_path, "ForPreTraining")
    hf = hf_ref.random_hf(cls, cfg)
    errors = hf_ref.hf_backend_errors(hf, graphspec.load(path, ["seq_len=12", "batch=2"]), ids(2), "electra")
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("task", sorted(TASKS))
def test_exported_weights_load_into_hugging_face_and_back(tmp_path, task):
    _, cls, _, path = imported(tmp_path, task)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=12", "batch=2"]), "default")
    hf_ref.perturbed(net, seed=4)
    hf, out = hf_ref.export_and_load(tmp_path, path, net, cls)
    assert (out["model_type"], out["architectures"], out["embedding_size"]) == ("electra", [cls.__name__], 16)
    with torch.no_grad():
        got, want = our_outputs(net(ids(5)), task), task_outputs(hf(input_ids=ids(5)), task)
    assert all(rel_err(g, w) < RTOL for g, w in zip(got, want, strict=True))
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


@pytest.mark.parametrize("sets, words", [
    (["head=mlm(relu, eps=1e-12)"], "its generator head is dense, gelu, LayerNorm and the decoder"),
    (["head=classifier(3, pool=cls)"], "its sequence classifier is dense, gelu and out_proj on [CLS]"),
    (["head=discriminator(relu)"], "its discriminator's activation is hidden_act"),
    (["head=pooler"], "it has no pooler"),
])
def test_a_spec_electra_cannot_hold_is_refused(tmp_path, sets, words):
    r, out = hf_ref.exported(tmp_path, "electra_small", ["L=2", *sets])
    assert r.exit_code == 2 and words in r.output, r.output
    assert not out.exists()


@pytest.mark.parametrize("embed, stack, message, fix", [
    ("tokens(100, dim=16)", "{dim: 32, heads: 2}", "encoder dim 32 differs from the embedding dim 16",
     "tokens(..., dim=16, proj=32) (ELECTRA)"),
    ("tokens(100, dim=16, proj=24)", "{dim: 32, heads: 2}", "encoder dim 32 differs from the embedding's projection (24)",
     "set encoder.dim to 24"),
    ("tokens(100, dim=16, proj=0)", "{dim: 32, heads: 2}", "proj must be ≥ 1", ""),
])
def test_bad_projection_is_located_exit_2(tmp_path, monkeypatch, embed, stack, message, fix):
    (tmp_path / "s.yaml").write_text(f"name: s\ninput: tokens(16)\nembed: {embed}\nencoder×1: {stack}\nhead: none\n")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "s.yaml:" in r.output and message in r.output and fix in r.output, r.output


def test_a_tied_lm_head_on_a_projected_embedding_is_located_exit_2(tmp_path, monkeypatch):
    (tmp_path / "s.yaml").write_text("name: s\ninput: tokens(16)\nembed: tokens(100, dim=16, pos=learned(40), proj=32)\n"
                                     "decoder×1: {dim: 32, heads: 2}\nhead: lm(tied=true)\n")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "s.yaml:5:" in r.output and "a tied LM head decodes through the token table, which is 16 wide" in r.output


@pytest.mark.parametrize("names", ["", "names: hf\n"])
def test_the_projection_is_shared_by_an_encoder_decoder_and_kept_under_hf_names(tmp_path, monkeypatch, names):
    """One table and one projection for both stacks, counted once (100·16 + 40·16 + 16·32 + 32 against
    the 100·32 + 40·32 of an unprojected 32-wide embedding), and the generated module holds the IR's
    parameters (`build -t torch` checks its state dict); `names: hf` keeps the projection too."""
    spec = (f"name: s\n{names}input: tokens(16, tgt_len=12)\nembed: EMBED\n"
            "encoder×1: {dim: 32, heads: 2}\ndecoder×1: {dim: 32, heads: 2, cross: true}\nhead: lm(tied=false)\n")
    (tmp_path / "s.yaml").write_text(spec.replace("EMBED", "tokens(100, dim=16, pos=learned(40), proj=32)"))
    (tmp_path / "wide.yaml").write_text(spec.replace("EMBED", "tokens(100, dim=32, pos=learned(40))"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["build", "s.yaml", "-t", "torch", "-o", "out"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    projected, wide = graphspec.load(tmp_path / "s.yaml").params(), graphspec.load(tmp_path / "wide.yaml").params()
    assert projected - wide == (100 * 16 + 40 * 16 + 16 * 32 + 32) - (100 * 32 + 40 * 32)
