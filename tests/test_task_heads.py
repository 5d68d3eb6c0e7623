"""Task heads: `classifier(n, pool=...)` on tokens, against the Hugging Face classes it stands for,
built from small Config objects with random (perturbed) weights: BertFor{Sequence,Token}-
Classification (pool=pooler, tokens), the decoders' generic {P}For{Sequence,Token}Classification
(pool=last without bias, tokens), ModernBertFor{Sequence,Token}Classification (pool=cls or mean,
then transform=act: ModernBertPredictionHead) and Dinov2[WithRegisters]ForImageClassification
(pool=cls_mean: [class] ‖ the mean of the patch tokens, registers left out); `span`, the
...ForQuestionAnswering heads' start and end logits. Parameters on the
meta device, logits with graphspec's weight map (both ways), ONNX and TVM, `export --format hf`
and `import-weights`, and located errors."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.interchange import from_hf_config
from graphspec.interchange.hf_import_llm import DECODER_TASKS, task_class
from graphspec.weights import family_of, to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402

generated, meta, n_params, rel_err = hf_ref.generated, hf_ref.meta, hf_ref.n_params, hf_ref.rel_err
RTOL = 1e-5

BERT = dict(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
LLAMA = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, num_labels=3)
MODERNBERT = dict(vocab_size=128, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=96,
                  local_attention=8, pad_token_id=0, eos_token_id=1, bos_token_id=2, cls_token_id=2, sep_token_id=1,
                  num_labels=3)
GPT2 = dict(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=4, pad_token_id=0, bos_token_id=99,
            eos_token_id=99, num_labels=3)
DINOV2 = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=56, patch_size=14,
              layer_norm_eps=1e-6, num_labels=5)

# case -> (Config class, its arguments, the HF class, the head `graphspec import` writes, overrides, input)
CASES = {
    "bert-seq": ("BertConfig", BERT, "BertForSequenceClassification", "classifier(3, pool=pooler)", "tokens"),
    "bert-tok": ("BertConfig", BERT, "BertForTokenClassification", "classifier(3, pool=tokens)", "tokens"),
    "llama-seq": ("LlamaConfig", LLAMA, "LlamaForSequenceClassification",
                  "classifier(3, pool=last, bias=false, pad_token_id=0)", "tokens"),
    "llama-tok": ("LlamaConfig", LLAMA, "LlamaForTokenClassification", "classifier(3, pool=tokens)", "tokens"),
    # GPT-2: `score` without bias on the last token; GPT2ForTokenClassification's `classifier`, biased
    "gpt2-seq": ("GPT2Config", GPT2, "GPT2ForSequenceClassification",
                 "classifier(3, pool=last, bias=false, pad_token_id=0)", "tokens"),
    "gpt2-tok": ("GPT2Config", GPT2, "GPT2ForTokenClassification", "classifier(3, pool=tokens)", "tokens"),
    "modernbert-seq-mean": ("ModernBertConfig", {**MODERNBERT, "classifier_pooling": "mean"},
                            "ModernBertForSequenceClassification",
                            "classifier(3, pool=mean, transform=gelu, eps=1e-05, transform_bias=false)", "tokens"),
    "modernbert-seq-cls": ("ModernBertConfig", {**MODERNBERT, "classifier_activation": "silu", "norm_bias": True,
                                                  "classifier_bias": True},
                           "ModernBertForSequenceClassification", "classifier(3, pool=cls, transform=silu, eps=1e-05)",
                           "tokens"),
    "modernbert-tok": ("ModernBertConfig", MODERNBERT, "ModernBertForTokenClassification",
                       "classifier(3, pool=tokens, transform=gelu, eps=1e-05, transform_bias=false)", "tokens"),
    "dinov2": ("Dinov2Config", DINOV2, "Dinov2ForImageClassification", "classifier(5, pool=cls_mean)", "image"),
    "dinov2-reg": ("Dinov2WithRegistersConfig", {**DINOV2, "num_register_tokens": 4},
                   "Dinov2WithRegistersForImageClassification", "classifier(5, pool=cls_mean)", "image"),
}
FAMILY = {"bert": "bert", "gpt2": "gpt2", "llama": "llama", "modernbert": "modernbert", "dinov2": "dinov2"}


def config(case):
    cfg_cls, kw, cls, _, _ = CASES[case]
    eager = {"attn_implementation": "eager"} if cfg_cls == "ModernBertConfig" else {}
    return getattr(transformers, cfg_cls)(**kw, architectures=[cls], **eager), getattr(transformers, cls)


def family(case):
    return FAMILY[case.split("-")[0]]


def imported(tmp_path, cfg):
    """`cfg` written by to_json_file and imported: (the spec text, its path)."""
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    text = from_hf_config(json.loads(path.read_text()))
    (tmp_path / "s.yaml").write_text(text)
    return text, tmp_path / "s.yaml"


def small(path, case, *sets):
    n = ["seq_len=24"] if CASES[case][4] == "tokens" else []
    return graphspec.load(path, [*n, "batch=2", *sets])


def inputs(case, seed=0):
    """(the generated module's input, HF's keyword arguments): tokens 1.. (no pad id 0), or an image."""
    g = torch.Generator().manual_seed(seed)
    if CASES[case][4] == "image":
        x = torch.randn(2, 3, 56, 56, generator=g)
        return x, {"pixel_values": x}
    vocab = CASES[case][1]["vocab_size"]
    x = torch.randint(1, vocab, (2, 24), generator=g)
    return x, {"input_ids": x}


def random_hf(case):
    cfg, cls = config(case)
    hf = hf_ref.random_hf(cls, cfg)
    with torch.no_grad():  # LayerScale and norm γ off 1 (DINOv2's 1.0 init would hide a swapped branch)
        for name, p in hf.named_parameters():
            if name.endswith(("lambda1", "norm.weight")):
                p.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(len(name)))
    return hf


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


# -- counts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_imported_head_and_params_equal_hugging_face_on_meta(tmp_path, case):
    """The head each class imports as; params = the HF class on meta (DINOv2: less the mask_token,
    d = 64, which graphspec leaves out, as for the base models)."""
    cfg, cls = config(case)
    text, path = imported(tmp_path, cfg)
    assert text.endswith(f"head: {CASES[case][3]}\n"), text
    mask_token = 64 if case.startswith("dinov2") else 0
    assert graphspec.load(path).params() == n_params(meta(cls, cfg)) - mask_token


def test_head_params_and_macs_are_the_formulas(tmp_path):
    """d = 64, 3 labels, N = 24: BERT's pooler d² + d and classifier 3d + 3; ModernBERT's transform
    d² (no bias) + d (LayerNorm γ) and classifier 3d + 3; the decoder's score 3d, whose MACs are
    one token's (HF computes `score` on all N tokens and then picks the last: (N − 1)·3d more)."""
    d = 64
    for case, head_params, head_macs in [
        ("modernbert-seq-mean", d * d + d + 3 * d + 3, d * d + 3 * d),
        ("modernbert-tok", d * d + d + 3 * d + 3, 24 * (d * d + 3 * d)),
        ("llama-seq", 3 * d, 3 * d),
        ("llama-tok", 3 * d + 3, 24 * 3 * d),
    ]:
        (tmp_path / case).mkdir()
        _, path = imported(tmp_path / case, config(case)[0])
        full, body = graphspec.load(path, ["seq_len=24"]), graphspec.load(path, ["seq_len=24", "head=none"])
        assert (full.params() - body.params(), full.macs() - body.macs()) == (head_params, head_macs), case



@pytest.mark.parametrize("case", ["llama-seq", "llama-tok"])
def test_head_macs_against_flop_counter(tmp_path, case):
    """FlopCounterMode on the HF class less its base model: N·d·n MACs for both heads, since HF's
    sequence classifier runs `score` on every token before it picks the last; graphspec counts d·n
    for pool=last (docs/conventions.md, "Task heads"), N·d·n for pool=tokens."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg, cls = config(case)
    cfg._attn_implementation = "eager"
    _, path = imported(tmp_path, cfg)
    x = torch.randint(1, 128, (1, 24), generator=torch.Generator().manual_seed(0))

    def macs(model):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=x)
        return counter.get_total_flops() // 2

    hf_head = macs(cls(cfg).eval()) - macs(transformers.LlamaModel(cfg).eval())
    ours = graphspec.load(path, ["seq_len=24"]).macs() - graphspec.load(path, ["seq_len=24", "head=none"]).macs()
    assert hf_head == 24 * 64 * 3
    assert ours == (64 * 3 if case == "llama-seq" else hf_head)

# DECODER_TASKS is graphspec's table; transformers' own classes are the reference: every causal LM
# graphspec imports, and the two without task classes (OPT's and GPT-J's heads are their own importers':
# tests/test_opt.py, tests/test_gptj.py)
DECODERS = {mt: v[1] for mt, v in hf_ref.IMPORT_FAMILIES.items()
            if v[1].endswith("ForCausalLM") and mt not in ("opt", "gptj")}


def test_the_decoder_task_table_is_transformers_own():
    assert set(DECODERS.values()) <= set(DECODER_TASKS) | {"Llama4ForCausalLM", "Glm4MoeForCausalLM"}
    for lm in DECODERS.values():
        prefix = "Gemma3Text" if lm == "Gemma3ForCausalLM" else lm.removesuffix("ForCausalLM")
        for t in ("SequenceClassification", "TokenClassification", "QuestionAnswering"):
            assert (task_class(lm, t) is not None) == hasattr(transformers, f"{prefix}For{t}"), (lm, t)


@pytest.mark.parametrize("mt", sorted(mt for mt, lm in DECODERS.items() if lm in DECODER_TASKS))
def test_every_decoders_task_classes_count_as_hugging_face(tmp_path, mt):
    """Each family's Config class with its defaults (4 layers), architectures = each task class
    (QuestionAnswering: `span`, qa_outputs d -> 2): params = that class on meta."""
    lm = DECODERS[mt]
    for t in DECODER_TASKS[lm][1]:
        cls = task_class(lm, t)
        extra = {"num_experts_per_tok": 6} if mt == "deepseek_v2" else {}  # its Config's default: None (refused)
        cfg = getattr(transformers, hf_ref.IMPORT_FAMILIES[mt][0])(num_hidden_layers=4, architectures=[cls],
                                                                    num_labels=7, **extra)
        (tmp_path / cls).mkdir()
        text, path = imported(tmp_path / cls, cfg)
        assert ("head: span\n" if t == "QuestionAnswering" else "head: classifier(7, pool=") in text
        assert graphspec.load(path).params() == n_params(meta(getattr(transformers, cls), cfg)), cls


# -- logits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_module_computes_hugging_faces_logits(tmp_path, case, passes):
    hf = random_hf(case)
    _, path = imported(tmp_path, hf.config)
    graph, net, src = generated(small(path, case), passes)
    net.load_state_dict(to_graphspec(hf, graph, family(case)), strict=True)
    x, kw = inputs(case)
    with torch.no_grad():
        got, want = net(x), hf(**kw).logits
    assert got.shape == want.shape and rel_err(got, want) < RTOL
    left_out = [k for k in hf.state_dict() if k.endswith("embeddings.mask_token")]  # DINOv2's, not built
    assert len(left_out) == case.startswith("dinov2")
    assert hf_ref.round_trip_mismatches(net, graph, family(case), hf) == left_out
    if case.startswith("modernbert"):
        assert "class PredictionHead(nn.Module)" in src


# the other decoders' importers (gpt-oss, DeepSeek's MLA, OLMo 3, Gemma 3, a Qwen3 mixture): small
# configs, the task classes as HF builds them
DECODER = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, num_labels=3, pad_token_id=0, attn_implementation="eager")
OTHER_DECODERS = {
    "GptOssForSequenceClassification": ("GptOssConfig", dict(num_local_experts=4, num_experts_per_tok=2,
                                                             sliding_window=4, intermediate_size=40)),
    "GptOssForTokenClassification": ("GptOssConfig", dict(num_local_experts=4, num_experts_per_tok=2,
                                                          sliding_window=4, intermediate_size=40)),
    "DeepseekV3ForSequenceClassification": ("DeepseekV3Config", dict(
        num_key_value_heads=4, moe_intermediate_size=24, kv_lora_rank=32, q_lora_rank=24, qk_nope_head_dim=16,
        qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=8, num_experts_per_tok=2, n_group=1, topk_group=1,
        first_k_dense_replace=1, head_dim=None)),
    "Olmo3ForSequenceClassification": ("Olmo3Config", dict(num_hidden_layers=4, sliding_window=5, head_dim=None, eos_token_id=None)),
    "Gemma3TextForSequenceClassification": ("Gemma3TextConfig", dict(sliding_window=4)),
    "Qwen3MoeForTokenClassification": ("Qwen3MoeConfig", dict(moe_intermediate_size=32, num_experts=4,
                                                              num_experts_per_tok=2)),
}


@pytest.mark.parametrize("cls", sorted(OTHER_DECODERS))
def test_other_decoders_task_heads_compute_hugging_faces_logits(tmp_path, cls):
    cfg_cls, kw = OTHER_DECODERS[cls]
    cfg = getattr(transformers, cfg_cls)(**{k: v for k, v in {**DECODER, **kw}.items() if v is not None},
                                         architectures=[cls])
    text, path = imported(tmp_path, cfg)
    assert "head: classifier(3, pool=" + ("last, bias=false, pad_token_id=0)" if "Sequence" in cls else "tokens)") in text
    hf = hf_ref.random_hf(getattr(transformers, cls), cfg)
    m = graphspec.load(path, ["seq_len=12", "batch=2"])
    assert m.params() == n_params(hf)
    graph, net, _ = generated(m, "default")
    net.load_state_dict(to_graphspec(hf, graph), strict=True)
    x = torch.randint(1, 120, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert rel_err(net(x), hf(input_ids=x).logits) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, family_of(hf), hf) == []


def test_each_pooling_matters(tmp_path):
    """The comparisons above can fail: the same weights, pooled otherwise, are far off."""
    for case, wrong in [("modernbert-seq-mean", "head.pool=cls"), ("llama-seq", "head=classifier(3, pool=cls, bias=false)"),
                        ("modernbert-seq-cls", "head.pool=mean")]:
        hf = random_hf(case)
        (tmp_path / case).mkdir()
        _, path = imported(tmp_path / case, hf.config)
        graph, net, _ = generated(small(path, case, wrong))
        net.load_state_dict(to_graphspec(hf, graph, family(case)), strict=True)
        x, kw = inputs(case)
        with torch.no_grad():
            assert rel_err(net(x), hf(**kw).logits) > 1e-2, case


def padded(vocab=128, seed=0):
    """Token ids (4, 12) with padding (id 0): right-padded, left-padded, all padding, none."""
    x = torch.randint(1, vocab, (4, 12), generator=torch.Generator().manual_seed(seed))
    x[0, 7:], x[1, :3], x[2] = 0, 0, 0
    return x


def test_pool_last_with_pad_token_id_reads_each_rows_last_token_as_hugging_face_does(tmp_path):
    """LlamaForSequenceClassification with pad_token_id 0 on a padded batch (right, left, all
    padding, none): the generated module, the IR interpreter, ONNX and TVM give HF's logits; the
    last position (pool=last without pad_token_id) is far off on the padded rows and equal on the
    unpadded one."""
    hf = random_hf("llama-seq")
    _, path = imported(tmp_path, hf.config)
    m = graphspec.load(path, ["seq_len=12", "batch=4"])
    graph, net, src = generated(m, "default")
    assert "last_token(self.norm(x), input_ids, pad=0)" in src
    net.load_state_dict(to_graphspec(hf, graph, "llama"), strict=True)
    x = padded()
    with torch.no_grad():
        got, want = net(x), hf(input_ids=x).logits
    assert rel_err(got, want) < RTOL
    assert hf_ref.hf_interpreter_error(hf, m.graph, x, "llama") < RTOL
    g2, net2, _ = generated(graphspec.load(path, ["seq_len=12", "batch=4", "head=classifier(3, pool=last, bias=false)"]))
    net2.load_state_dict(to_graphspec(hf, g2, "llama"), strict=True)
    with torch.no_grad():
        last = net2(x)
    assert rel_err(last[:3], want[:3]) > 1e-2 and rel_err(last[3:], want[3:]) < RTOL
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    errors = hf_ref.hf_backend_errors(hf, m, x, "llama")  # ONNX Equal/ArgMax/GatherND, Relax gather_nd
    assert max(errors.values()) < 1e-4, errors


def test_gpt2_sequence_classifier_reads_each_rows_last_token_as_hugging_face_does(tmp_path):
    """GPT2ForSequenceClassification (pad_token_id 0) on the padded batch: its `score` logits at
    each row's last token that is not padding; the last position is far off on the padded rows."""
    hf = random_hf("gpt2-seq")
    _, path = imported(tmp_path, hf.config)
    graph, net, src = generated(graphspec.load(path, ["seq_len=12", "batch=4"]), "default")
    assert "return self.head(last_token(self.norm(x), input_ids, pad=0))" in src, src
    net.load_state_dict(to_graphspec(hf, graph, "gpt2"), strict=True)
    x = padded(vocab=100)
    g2, net2, _ = generated(graphspec.load(path, ["seq_len=12", "batch=4", "head=classifier(3, pool=last, bias=false)"]))
    net2.load_state_dict(to_graphspec(hf, g2, "gpt2"), strict=True)
    with torch.no_grad():
        got, want, last = net(x), hf(input_ids=x).logits, net2(x)
    assert got.shape == want.shape == (4, 3) and rel_err(got, want) < RTOL
    assert rel_err(last[:3], want[:3]) > 1e-2 and rel_err(last[3:], want[3:]) < RTOL


def test_pad_token_id_exports_so_that_hugging_face_batches_padded_rows(tmp_path):
    """A spec's classifier(pool=last, pad_token_id=5) -> `export --format hf --weights`: the config
    has pad_token_id 5, and HF's class computes the module's logits on a padded batch (without a
    pad_token_id HF refuses any batch > 1); pad_token_id null where the head has none."""
    spec = tmp_path / "cls.yaml"
    spec.write_text("name: cls\nnames: hf\nvars: vocab=100, d=64\ninput: tokens(12, batch=4)\n"
                    "embed: tokens(vocab, dim=d, pos=rope(10000))\n"
                    "decoder×2:\n  dim: d\n  heads: 4\n  norm: rms_norm(1e-6)\n  mlp: glu(96, silu)\n  bias: false\n"
                    "  final_norm: true\nhead: classifier(3, pool=last, bias=false, pad_token_id=5)\n")
    graph, net, _ = generated(graphspec.load(spec), "default")
    hf_ref.perturbed(net, seed=4)
    hf, out = hf_ref.export_and_load(tmp_path, spec, net, transformers.LlamaForSequenceClassification)
    assert out["pad_token_id"] == 5
    x = padded(vocab=100, seed=3)
    x[x == 0] = 5
    with torch.no_grad():
        assert rel_err(net(x), hf(input_ids=x).logits) < RTOL
    spec.write_text(spec.read_text().replace(", pad_token_id=5", ""))
    r = cli("export", spec, "--format", "hf", "-o", tmp_path / "hf_nopad")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "hf_nopad" / "config.json").read_text())["pad_token_id"] is None


@pytest.mark.parametrize("pad, head", [(0, ", pad_token_id=0"), (127, ", pad_token_id=127"), (None, ""),
                                       (-1, ""), (128, "")])
def test_a_config_pad_token_id_that_is_no_token_imports_as_the_last_position(tmp_path, pad, head):
    """HF compares ids with pad_token_id: null, -1 or one past the vocabulary never matches, so
    the last position is what HF reads (for any batch but null's 1)."""
    cfg, _ = config("llama-seq")
    cfg.pad_token_id = pad
    text, _ = imported(tmp_path, cfg)
    assert text.endswith(f"head: classifier(3, pool=last, bias=false{head})\n"), text[-200:]


def test_dinov2_averages_the_patch_tokens_without_the_registers():
    """HF's own features: its logits are classifier([class] ‖ mean of tokens 5:) (1 + 4 registers),
    not of tokens 1: (registers averaged in)."""
    hf = random_hf("dinov2-reg")
    x, kw = inputs("dinov2-reg")
    with torch.no_grad():
        h = hf.dinov2_with_registers(**kw).last_hidden_state
        logits = hf(**kw).logits
        right = hf.classifier(torch.cat([h[:, 0], h[:, 5:].mean(1)], dim=1))
        wrong = hf.classifier(torch.cat([h[:, 0], h[:, 1:].mean(1)], dim=1))
    assert rel_err(right, logits) < RTOL and rel_err(wrong, logits) > 1e-3


@pytest.mark.parametrize("case", ["llama-seq", "dinov2-reg"])
def test_onnx_and_tvm_compute_hugging_faces_logits(tmp_path, case):
    """pool=last (ONNX Gather at -1, Relax take mode=wrap) and cls_mean (Slice + ReduceMean, concat)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    hf = random_hf(case)
    _, path = imported(tmp_path, hf.config)
    x, kw = inputs(case)
    errors = hf_ref.hf_backend_errors(hf, small(path, case), x, family(case), key=next(iter(kw)))
    assert max(errors.values()) < 1e-4, errors


# -- export and import-weights -----------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_exported_weights_load_into_hugging_face_and_back(tmp_path, case):
    """Generated module (perturbed) -> `export --format hf --weights`: the HF class loads it with no
    missing, unexpected or mismatched keys and computes the same logits; HF's save_pretrained ->
    `import-weights` gives the module's tensors back bit for bit."""
    cfg, cls = config(case)
    _, path = imported(tmp_path, cfg)
    graph, net, _ = generated(small(path, case), "default")
    hf_ref.perturbed(net, seed=4)
    eager = {"attn_implementation": "eager"} if case.startswith("modernbert") else {}
    hf, out = hf_ref.export_and_load(tmp_path, path, net, cls, **eager)
    assert out["architectures"] == [cls.__name__] and out["num_labels"] == cfg.num_labels
    assert out.get("pad_token_id") == (0 if case in ("llama-seq", "gpt2-seq") else out.get("pad_token_id"))  # HF batches with it
    x, kw = inputs(case, seed=5)
    with torch.no_grad():
        assert rel_err(net(x), hf(**kw).logits) < RTOL
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


def test_a_token_head_without_bias_exports_token_classification_bias_false(tmp_path):
    cfg, _ = config("llama-tok")
    cfg.token_classification_bias = False
    text, path = imported(tmp_path, cfg)
    assert text.endswith("head: classifier(3, pool=tokens, bias=false)\n")
    assert graphspec.load(path).params() == n_params(meta(transformers.LlamaForTokenClassification, cfg))
    r = cli("export", path, "--format", "hf", "-o", tmp_path / "hf")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["token_classification_bias"] is False


@pytest.mark.parametrize("name, head, words", [
    ("llama2_7b", "classifier(3, pool=mean, bias=false)", "transformers' decoders classify the last token"),
    ("llama2_7b", "classifier(3, pool=last)", "transformers' decoders classify the last token"),
    ("llama4_scout", "classifier(3, pool=last, bias=false)",
     "transformers has no sequence classification model beside Llama4ForCausalLM"),
    ("olmo2_7b", "classifier(3, pool=tokens)", "transformers has no token classification model beside Olmo2ForCausalLM"),
    ("gemma2_2b", "span", "transformers has no question answering model beside Gemma2ForCausalLM"),
    ("gpt2", "classifier(3, pool=last)", "GPT-2's task heads are `score` without bias on the last token"),
    ("gpt2", "classifier(3, pool=tokens, bias=false)", "GPT-2's task heads are `score` without bias"),
    ("gpt2", "classifier(3, pool=mean, bias=false)", "write classifier(n, pool=last, bias=false)"),
    ("modernbert_base", "classifier(3, pool=cls)", "ModernBERT's classifiers pass the pooled vector through"),
    ("modernbert_base", "classifier(3, pool=cls, transform=gelu, bias=false)", "and a Linear with bias"),
])
def test_a_task_head_transformers_has_no_class_for_is_refused(tmp_path, name, head, words):
    r, out = hf_ref.exported(tmp_path, name, ["L=4", f"head={head}"])
    assert r.exit_code == 2 and words in r.output, r.output
    assert not out.exists()


# -- question answering: `span` -------------------------------------------------------------------
QA = {"BertForQuestionAnswering": ("BertConfig", BERT, "bert", "span"),
      "GPT2ForQuestionAnswering": ("GPT2Config", GPT2, "gpt2", "span"),
      "LlamaForQuestionAnswering": ("LlamaConfig", LLAMA, "llama", "span"),
      "ModernBertForQuestionAnswering": ("ModernBertConfig", MODERNBERT, "modernbert",
                                         "span(transform=gelu, eps=1e-05, transform_bias=false)")}


def qa(tmp_path, cls, **kw):
    cfg_cls, base, _, _ = QA[cls]
    eager = {"attn_implementation": "eager"} if cfg_cls == "ModernBertConfig" else {}
    cfg = getattr(transformers, cfg_cls)(**{**base, "num_labels": 2, **kw}, architectures=[cls], **eager)
    text, path = imported(tmp_path, cfg)
    return cfg, text, path


def qa_ids(vocab, seed=0):
    return torch.randint(1, vocab, (2, 24), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("cls", sorted(QA))
def test_span_head_computes_hugging_faces_start_and_end_logits(tmp_path, cls, passes):
    """qa_outputs (d -> 2) on every token, split into (B, N) start and end logits; params = HF on
    meta (BERT's model without its pooler); both outputs in HF's order; the names both ways."""
    cfg, text, path = qa(tmp_path, cls)
    assert text.endswith(f"head: {QA[cls][3]}\n"), text
    hf_cls, family = getattr(transformers, cls), QA[cls][2]
    m = graphspec.load(path, ["seq_len=24", "batch=2"])
    assert m.params() == n_params(meta(hf_cls, cfg))
    hf = hf_ref.random_hf(hf_cls, cfg)
    graph, net, src = generated(m, passes)
    net.load_state_dict(to_graphspec(hf, graph, family), strict=True)
    x = qa_ids(cfg.vocab_size)
    with torch.no_grad():
        start, end = net(x)
        want = hf(input_ids=x)
    assert start.shape == want.start_logits.shape == (2, 24)
    assert rel_err(start, want.start_logits) < RTOL and rel_err(end, want.end_logits) < RTOL
    assert rel_err(start, want.end_logits) > 1e-2  # the two columns are not interchangeable
    assert hf_ref.round_trip_mismatches(net, graph, family, hf) == []
    assert "self.qa_outputs = nn.Linear(" in src


def test_span_head_through_onnx_and_tvm(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    from graphspec.backends import onnx as gx
    from graphspec.backends import tvm as gt

    cfg, _, path = qa(tmp_path, "LlamaForQuestionAnswering")
    hf = hf_ref.random_hf(transformers.LlamaForQuestionAnswering, cfg)
    x = qa_ids(cfg.vocab_size, seed=3)
    with torch.no_grad():
        want = hf(input_ids=x)
    g = hf_ref.pipeline(graphspec.load(path, ["seq_len=24", "batch=2"]).graph, "default")
    arrays = {k: v.numpy() for k, v in to_graphspec(hf, g, "llama").items()}
    low = gt.lower(g)
    for got in (gx.run(gx.export(g, arrays), {g.inputs[0].name: x.numpy()}),
                gt.Runner(gt.build(low, "llvm")[0], low.params, arrays)(x.numpy())):
        start, end = (torch.from_numpy(o) for o in got)
        assert rel_err(start, want.start_logits) < 1e-4 and rel_err(end, want.end_logits) < 1e-4


@pytest.mark.parametrize("cls", sorted(QA))
def test_span_head_exports_and_imports_weights(tmp_path, cls):
    cfg, _, path = qa(tmp_path, cls)
    graph, net, _ = generated(graphspec.load(path, ["seq_len=24", "batch=2"]), "default")
    hf_ref.perturbed(net, seed=6)
    eager = {"attn_implementation": "eager"} if cls.startswith("ModernBert") else {}
    hf, out = hf_ref.export_and_load(tmp_path, path, net, getattr(transformers, cls), **eager)
    assert out["architectures"] == [cls]
    x = qa_ids(cfg.vocab_size, seed=7)
    with torch.no_grad():
        start, end = net(x)
        want = hf(input_ids=x)
    assert rel_err(start, want.start_logits) < RTOL and rel_err(end, want.end_logits) < RTOL
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


@pytest.mark.parametrize("cls", ["BertForQuestionAnswering", "ModernBertForQuestionAnswering"])
def test_a_span_config_with_other_than_two_labels_is_refused_at_its_key(tmp_path, cls):
    """Their qa_outputs is Linear(d, num_labels), split in two: HF's own model fails on 3."""
    cfg_cls, base, _, _ = QA[cls]
    cfg = getattr(transformers, cfg_cls)(**{**base, "num_labels": 3}, architectures=[cls])
    (tmp_path / "config.json").write_text(cfg.to_json_string(), encoding="utf-8")
    r = cli("import", tmp_path / "config.json", "-o", tmp_path / "s.yaml")
    assert r.exit_code == 2 and "gives 3 labels" in r.output and "which takes 2" in r.output, r.output
    assert "config.json:" in r.output and not (tmp_path / "s.yaml").exists()


def test_base_drops_the_task_head(tmp_path):
    """`graphspec import --base` of a task-head config: the base model, as HF's counts it."""
    cfg, _ = config("modernbert-seq-mean")
    cfg.to_json_file(str(tmp_path / "config.json"))
    r = cli("import", tmp_path / "config.json", "-o", tmp_path / "base.yaml", "--base")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "base.yaml").read_text()
    assert "ModernBertForSequenceClassification's head was left out" in text and text.endswith("head: none\n")
    assert graphspec.load(tmp_path / "base.yaml").params() == n_params(meta(transformers.ModernBertModel, cfg))


# -- bad arguments: located, exit 2 -----------------------------------------------------------------
SPEC = """\
name: s
vars: d=32
input: INPUT
embed: EMBED
encoder×1: {dim: d, heads: 2}
head: HEAD
"""
TOKENS = ("tokens(16)", "tokens(100, dim=d)")
PATCHES = ("image(32)", "patches(16, dim=d)")


@pytest.mark.parametrize("io, head, message, fix", [
    (TOKENS, "classifier(3, eps=1e-5)", "eps= and transform_bias= set the transform before the classifier",
     "add transform=gelu"),
    (TOKENS, "classifier(3, transform_bias=false)", "this head has none", "add transform=gelu"),
    (TOKENS, "classifier(3, pool=pooler, transform=gelu)", "pool=pooler already passes [CLS] through BERT's dense",
     "write either pool=pooler"),
    (TOKENS, "classifier(3, pool=cls_mean)", "pool=cls_mean reads the class token, and this embedding has none",
     "cls_token=true"),
    (PATCHES, "classifier(3, pool=first)", "pooling 'first' is not one of cls, mean, last, tokens, cls_mean, pooler",
     "use one of cls, mean"),
    (TOKENS, "classifier(3, transform=swiglu)", "a gated MLP, not an activation", ""),
    (TOKENS, "classifier(3, bias=2)", "bias must be bool, got 2", ""),
    (TOKENS, "classifier(3, pad_token_id=0)", "pad_token_id= picks the last token that is not padding, and "
     "pool=cls reads no last token", "write classifier(n, pool=last, pad_token_id=...)"),
    (TOKENS, "classifier(3, pool=last, pad_token_id=100)", "pad_token_id=100 is not a token of this vocabulary "
     "of 100", "write a pad_token_id below 100"),
    (TOKENS, "classifier(3, pool=last, pad_token_id=-1)", "pad_token_id must be ≥ 0, got -1", "write a pad_token_id of at least 0"),
    (PATCHES, "classifier(3, pool=last, pad_token_id=0)", "pad_token_id= compares the token ids, and this model "
     "has none (its input is not tokens)", "leave pad_token_id out"),
    (TOKENS, "span(eps=1e-5)", "eps= and transform_bias= set the transform", "add transform=gelu"),
    (TOKENS, "span(3)", "span() argument `transform` must name a construct, got 3", "use one of relu, gelu"),
])
def test_bad_classifier_argument_is_located_exit_2(tmp_path, monkeypatch, io, head, message, fix):
    (tmp_path / "s.yaml").write_text(SPEC.replace("INPUT", io[0]).replace("EMBED", io[1]).replace("HEAD", head))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "s.yaml:6:" in r.output and "error: " in r.output and message in r.output, r.output
    assert fix in r.output


def test_a_token_pool_on_a_feature_map_is_located_exit_2(tmp_path, monkeypatch):
    spec = (tmp_path / "r.yaml")
    spec.write_text("name: r\ninput: image(64)\nbackbone: resnet(layers=[1, 1, 1, 1], width=8)\n"
                    "head: classifier(10, pool=tokens)\n")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "r.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "r.yaml:4:" in r.output and "this model ends in a feature map" in r.output, r.output
    spec.write_text(spec.read_text().replace("classifier(10, pool=tokens)", "span"))
    r = CliRunner().invoke(main, ["flops", "r.yaml"])
    assert r.exit_code == 2 and "r.yaml:4:" in r.output and "span scores tokens" in r.output, r.output
