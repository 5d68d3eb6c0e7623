"""ModernBERT (Warner et al. 2024, arXiv:2412.13663) against Hugging Face's ModernBertModel.

Three constructs make it declarable: the mask `local(W)` (a bidirectional window, query i sees
keys |i − j| ≤ W // 2: HF's sliding_window_bidirectional_overlay over config.sliding_window =
local_attention // 2), the block step `norm(name, first=false)` (no attention norm in block 0,
whose input is the embedding's LayerNorm; HF's `nn.Identity()` there), and `norm=` on the token
embedding taking a norm construct (LayerNorm without bias). The references are transformers'
ModernBertModel built from Config objects with random weights (perturbed), on the meta device for
counts, and its mask function for the kept pairs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.interpret import run
from graphspec.ops.modernbert import local_keep
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

RTOL = 1e-5
# 4 layers: global, local, local, global; a window of 8 (4 on each side) over 24 tokens
SMALL = ["vocab=128", "d=64", "L=4", "h=4", "d_ff=96", "window=8", "seq_len=24", "batch=2"]
TOKENS = dict(pad_token_id=0, eos_token_id=1, bos_token_id=2, cls_token_id=2, sep_token_id=1)
# the released configs (answerdotai/ModernBERT-base, -large): hidden, layers, heads, intermediate
SIZES = {"modernbert_base": (768, 22, 12, 1152), "modernbert_large": (1024, 28, 16, 2624)}


def small_hf(**kw):
    cfg = transformers.ModernBertConfig(vocab_size=128, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                        intermediate_size=96, local_attention=8, attn_implementation="eager",
                                        **{**TOKENS, **kw})
    hf = hf_ref.random_hf(transformers.ModernBertModel, cfg).eval()
    with torch.no_grad():  # γ far from 1, so that a second LayerNorm of the embedding's output shows
        for name, p in hf.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(len(name)))
    return hf


def ids(seed=0, n=24):
    return torch.randint(0, 128, (2, n), generator=torch.Generator().manual_seed(seed))


def released(name: str):
    d, L, h, ff = SIZES[name]
    cfg = transformers.ModernBertConfig(vocab_size=50368, hidden_size=d, num_hidden_layers=L, num_attention_heads=h,
                                        intermediate_size=ff, attn_implementation="eager")
    return cfg


@pytest.mark.parametrize("passes", ["none", "default"])
def test_generated_module_and_interpreter_compute_hugging_faces_features(passes):
    hf = small_hf()
    m = graphspec.load("modernbert_base", SMALL)
    assert m.params() == hf_ref.n_params(hf)
    graph, net, src = hf_ref.generated(m, passes)
    assert "self.attn_norm = nn.LayerNorm(dim, eps=1e-05, bias=False) if attn_norm else nn.Identity()" in src
    assert "attn_norm=i >= 1," in src
    assert "local_mask(" in src and "def local_mask(attn, window: int):" in src
    net.load_state_dict(to_graphspec(hf, graph, "modernbert"), strict=True)
    x = ids()
    with torch.no_grad():
        want = hf(input_ids=x).last_hidden_state
        assert hf_ref.rel_err(net(x), want) < RTOL
        got = run(graph, {graph.inputs[0].name: x}, to_graphspec(hf, graph, "modernbert"))[graph.outputs[0]]
        assert hf_ref.rel_err(got, want) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "modernbert", hf) == []
    if passes == "default":  # the local band joins the one fused SDPA call, per layer
        fused = [n for n in graph if n.op == "attention"]
        assert [n.a.get("local") for n in fused] == [None, 8, 8, None]


def test_the_window_and_the_first_norm_matter():
    """A window covering the sequence, or an attention norm in block 0 (γ = 1: a LayerNorm of the
    embedding norm's output x·γ_e is not x·γ_e), both miss HF's output by more than ten
    times the tolerance: the comparison sees the band and the missing norm."""
    hf = small_hf()
    x = ids()
    with torch.no_grad():
        want = hf(input_ids=x).last_hidden_state
    wide = graphspec.load("modernbert_base", [*SMALL, "window=64"])
    graph, net, _ = hf_ref.generated(wide, "default")
    net.load_state_dict(to_graphspec(hf, graph, "modernbert"), strict=True)
    with torch.no_grad():
        assert hf_ref.rel_err(net(x), want) > 1e-3
    normed = graphspec.load("modernbert_base", [*SMALL, 'encoder.block=[["norm(attn_norm)", attn], ["norm(mlp_norm)", mlp]]'])
    assert normed.params() == hf_ref.n_params(hf) + 64
    params = to_graphspec(hf, normed.graph, "modernbert", partial=True)
    params["blocks.0.attn_norm.weight"] = torch.ones(64)
    with torch.no_grad():
        got = run(normed.graph, {normed.graph.inputs[0].name: x}, params)[normed.graph.outputs[0]]
        assert hf_ref.rel_err(got, want) > 10 * RTOL  # 4.4e-4: block 0's attention branch is small at init


def test_onnx_and_tvm_compute_hugging_faces_features():
    hf = small_hf()
    m = graphspec.load("modernbert_base", SMALL)
    x = ids(3)
    with torch.no_grad():
        want = hf(input_ids=x).last_hidden_state
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    from graphspec.passes import run_pipeline

    for passes in ("none", "default"):
        g = m.graph if passes == "none" else run_pipeline(m.graph, "default")[0]
        arrays = {k: v.detach().numpy() for k, v in to_graphspec(hf, g, "modernbert").items()}
        (got,) = gx.run(gx.export(g, arrays), {g.inputs[0].name: x.numpy()})
        assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4, passes
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    low = gt.lower(g)
    (got,) = gt.Runner(gt.build(low, "llvm")[0], low.params, arrays)(x.numpy())
    assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4


@pytest.mark.parametrize("N, S, window", [(24, 24, 8), (24, 24, 7), (5, 5, 128), (128, 128, 128), (3, 10, 4)])
def test_local_keep_is_hugging_faces_bidirectional_window(N, S, window):
    """graphspec's band against HF's own mask function, sliding_window_bidirectional_overlay(W // 2)
    (queries aligned with the last N keys, as the other masks)."""
    from transformers.masking_utils import sliding_window_bidirectional_overlay

    f = sliding_window_bidirectional_overlay(window // 2)
    theirs = np.array([[bool(f(0, 0, i + S - N, j)) for j in range(S)] for i in range(N)])
    assert (local_keep(N, S, window) == theirs).all()


@pytest.mark.parametrize("name", sorted(SIZES))
def test_bundled_params_equal_hugging_face_on_meta(name):
    cfg = released(name)
    hf = hf_ref.meta(transformers.ModernBertModel, cfg)
    m = graphspec.load(name)
    assert m.params() == hf_ref.n_params(hf) == m.spec.expect["params"]


@pytest.mark.parametrize("name, published", [("modernbert_base", 149), ("modernbert_large", 395)])
def test_published_sizes(name, published):
    """Table 5's 149M and 395M are ModernBertModel's 149.01 M and 394.78 M, rounded; with the MLM
    head (its dense d² and LayerNorm d, no biases, and the tied decoder's bias) ModernBertForMaskedLM
    has 149.66 M and 395.88 M, which would round to 150 M and 396 M."""
    d = SIZES[name][0]
    params = graphspec.load(name).params()
    assert round(params / 1e6) == published
    mlm = hf_ref.meta(transformers.ModernBertForMaskedLM, released(name))
    assert params + d * d + d + 50368 == hf_ref.n_params(mlm)
    assert round(hf_ref.n_params(mlm) / 1e6) == published + 1


@pytest.mark.parametrize("name", sorted(SIZES))
def test_bundled_macs_equal_flop_counter_at_512(name):
    hf = hf_ref.meta(transformers.ModernBertModel, released(name))
    with FlopCounterMode(display=False) as fc:
        hf(input_ids=torch.zeros(1, 512, dtype=torch.long, device="meta"))
    m = graphspec.load(name)
    assert m.macs() == fc.get_total_flops() // 2 == m.spec.expect["macs"]


def test_unmasked_macs_count_hugging_faces_kept_pairs():
    """`--convention unmasked` on the local layers: QKᵀ and ·V over the pairs HF's mask keeps
    (counted from HF's mask function over 512 × 512), the global layers dense."""
    from transformers.masking_utils import sliding_window_bidirectional_overlay

    m = graphspec.load("modernbert_base")
    f = sliding_window_bidirectional_overlay(64)
    kept = sum(bool(f(0, 0, i, j)) for i in range(512) for j in range(max(0, i - 70), min(512, i + 70)))
    local_layers = 22 - len(range(0, 22, 3))  # 14
    dense = m.macs()
    saved = local_layers * 2 * 768 * (512 * 512 - kept)  # QKᵀ and ·V: heads·d = 768 per pair, twice
    assert m.macs("unmasked") == dense - saved


def test_flops_check_matches_expect():
    r = CliRunner().invoke(main, ["flops", "modernbert_base", "--check"])
    assert r.exit_code == 0 and "all figures match" in r.output, r.output


@pytest.mark.parametrize("conv", [[], ["--convention", "unmasked"]])
def test_the_papers_formulas_are_identities(conv):
    """Dense: Ω(MSA) for all 22 layers; unmasked: Ω(local), N(2w+1) − w(w+1) pairs, for the 14 local
    ones, symbolic in N and at 512 (formulas.local_pairs, written apart from the op's count)."""
    r = CliRunner().invoke(main, ["flops", "modernbert_base", "--formulas", *conv])
    assert r.exit_code == 0, r.output
    assert ("Ω(local)" in r.output) == bool(conv)
    assert "all formula checks are identities" in r.output and "verdict  identity (symbolic)" in r.output


def test_global_with_its_own_rope_parses():
    """`global` is a Python keyword; as a call form in a pattern it reads as the mask."""
    a = graphspec.load("modernbert_base", SMALL)
    b = graphspec.load("modernbert_base", [*SMALL, "encoder.attention=pattern(global(pos=rope(160000)), "
                                           "local(window, pos=rope(10000)) * 2)"])
    assert [(n.op, dict(n.a)) for n in a.graph] == [(n.op, dict(n.a)) for n in b.graph]


@pytest.mark.parametrize("sets, message", [
    (["encoder.attention=local(0)"], "local() argument `window` must be > 0, got 0"),
    (["encoder.attention=local(-4)"], "local() argument `window` must be > 0, got -4"),
    (['encoder.block=[["norm(attn_norm, first=maybe)", attn], ["norm(mlp_norm)", mlp]]'], "first"),
    (["embed=tokens(vocab, dim=d, norm=batch_norm)"], "embedding norm"),
])
def test_bad_local_inputs_are_a_located_exit_2(sets, message):
    r = CliRunner().invoke(main, ["flops", "modernbert_base", *[a for s in sets for a in ("--set", s)]])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_codegen_writes_every_third_layer_global():
    src = graphspec.load("modernbert_base").codegen()
    assert "attn_norm=i >= 1," in src
    assert "local_attention=None if i % 3 == 0 else 128," in src
    assert "rope_theta=160000.0 if i % 3 == 0 else 10000.0," in src


# -- graphspec import / export --format hf (graphspec/interchange/hf_modernbert.py) ------------------
# ModernBERT-base's keys in the layout of the released config.json files (transformers 4.47: the
# pattern as global_attn_every_n_layers, the bases as global_rope_theta / local_rope_theta), which
# transformers 5's ModernBertConfig still reads; typed here from ModernBertConfig's fields and the
# paper's base sizes, not downloaded (the machine has no hub access).
LEGACY = {
    "architectures": ["ModernBertForMaskedLM"], "model_type": "modernbert", "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 50281, "classifier_activation": "gelu", "classifier_bias": False,
    "classifier_dropout": 0.0, "classifier_pooling": "mean", "cls_token_id": 50281, "decoder_bias": True,
    "deterministic_flash_attn": False, "embedding_dropout": 0.0, "eos_token_id": 50282,
    "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0, "gradient_checkpointing": False,
    "hidden_activation": "gelu", "hidden_size": 768, "initializer_cutoff_factor": 2.0, "initializer_range": 0.02,
    "intermediate_size": 1152, "layer_norm_eps": 1e-05, "local_attention": 128, "local_rope_theta": 10000.0,
    "max_position_embeddings": 8192, "mlp_bias": False, "mlp_dropout": 0.0, "norm_bias": False, "norm_eps": 1e-05,
    "num_attention_heads": 12, "num_hidden_layers": 22, "pad_token_id": 50283, "position_embedding_type": "absolute",
    "reference_compile": True, "repad_logits_with_grad": False, "sep_token_id": 50282,
    "sparse_pred_ignore_index": -100, "sparse_prediction": False, "torch_dtype": "float32", "vocab_size": 50368}


def imported(tmp_path, cfg: dict, *flags):
    import json

    (tmp_path / "config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "config.json"), "-o", str(tmp_path / "imported.yaml"), *flags])
    assert "Traceback" not in r.output, r.output
    return r, tmp_path / "imported.yaml"


def ir(m):
    return [(n.op, tuple(n.inputs), dict(n.a)) for n in m.graph]


def test_defaults_are_the_config_class():
    """A key a config file leaves out means ModernBertConfig's default; graphspec's table says the same."""
    from graphspec.interchange.defaults import DEFAULTS

    cfg = transformers.ModernBertConfig()
    for key, value in DEFAULTS["modernbert"].items():
        if key in ("layer_types", "rope_parameters"):  # derived by ModernBertConfig (every third layer full)
            continue
        assert getattr(cfg, key) == value, key


def test_a_config_of_model_type_only_is_modernbert_base(tmp_path):
    r, path = imported(tmp_path, {"model_type": "modernbert"})
    assert r.exit_code == 0, r.output
    assert ir(graphspec.load(path, ["seq_len=512"])) == ir(graphspec.load("modernbert_base"))


@pytest.mark.parametrize("layout", ["legacy", "transformers5"])
def test_imported_base_config_is_the_bundled_spec(tmp_path, layout):
    cfg = LEGACY if layout == "legacy" else {**released("modernbert_base").to_dict(), "architectures": ["ModernBertModel"]}
    r, path = imported(tmp_path, cfg, *(["--base"] if layout == "legacy" else []))
    assert r.exit_code == 0, r.output
    assert ir(graphspec.load(path, ["seq_len=512"])) == ir(graphspec.load("modernbert_base"))


def test_imported_masked_lm_counts_and_computes_as_hugging_face(tmp_path):
    r, path = imported(tmp_path, LEGACY)
    assert r.exit_code == 0, r.output
    assert "head: mlm(gelu, eps=1e-05, bias=false)" in path.read_text()
    hf_cfg = transformers.ModernBertConfig(**{k: v for k, v in LEGACY.items() if k != "architectures"})
    assert graphspec.load(path).params() == hf_ref.n_params(hf_ref.meta(transformers.ModernBertForMaskedLM, hf_cfg))
    # the same import of a small model, against its logits
    small = {**LEGACY, "vocab_size": 128, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
             "intermediate_size": 96, "local_attention": 8, **TOKENS}
    (tmp_path / "small").mkdir()
    r, path = imported(tmp_path / "small", small)
    assert r.exit_code == 0, r.output
    cfg = transformers.ModernBertConfig(**{k: v for k, v in small.items() if k != "architectures"},
                                        attn_implementation="eager")
    hf = hf_ref.random_hf(transformers.ModernBertForMaskedLM, cfg).eval()
    graph, net, _ = hf_ref.generated(graphspec.load(path, ["seq_len=24", "batch=2"]), "default")
    assert hf_ref.hf_logits_error(hf, net, graph, ids(7), "modernbert") < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "modernbert", hf) == []


@pytest.mark.parametrize("change, key, words", [
    ({"attention_dropout": 0.1}, "attention_dropout", "and again the output projection's result"),
    ({"classifier_bias": True}, "classifier_bias", "one `bias` for the dense layer and the LayerNorm"),
    ({"decoder_bias": False}, "decoder_bias", "its mlm head's decoder has a bias"),
    ({"architectures": ["ModernBertForMultipleChoice"]}, "architectures", "a multiple-choice head graphspec does not"),
    ({"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1.0},
                          "sliding_attention": {"rope_type": "default", "rope_theta": 1.0}}}, "rope_parameters",
     "it reads rope_theta with rope_type default"),
    ({"layer_types": ["full_attention"] * 3}, "layer_types", "per layer (22)"),
    ({"hidden_activation": "gelu_fast"}, "hidden_activation", "no such activation"),
    ({"some_new_switch": True}, "some_new_switch", "is not known to graphspec's modernbert importer"),
])
def test_configs_graphspec_cannot_express_are_refused_at_their_key(tmp_path, change, key, words):
    import json

    cfg = {k: v for k, v in LEGACY.items() if not ("rope_parameters" in change and k.endswith("rope_theta"))}
    r, path = imported(tmp_path, {**cfg, **change})
    assert r.exit_code == 2 and words in r.output, r.output
    line = next(i for i, t in enumerate(json.dumps({**cfg, **change}, indent=1).splitlines(), 1) if f'"{key}"' in t)
    assert f"config.json:{line}:" in r.output
    assert not path.exists()


@pytest.mark.parametrize("name", sorted(SIZES))
def test_exported_config_describes_the_spec(tmp_path, name):
    r, out = hf_ref.exported(tmp_path, name)
    assert r.exit_code == 0, r.output
    cfg = transformers.AutoConfig.from_pretrained(out)
    assert cfg.architectures == ["ModernBertModel"] and cfg.sliding_window == 64
    assert hf_ref.n_params(hf_ref.meta(transformers.ModernBertModel, cfg)) == graphspec.load(name).params()


@pytest.mark.parametrize("head", ["none", "mlm(gelu, eps=1e-5, bias=false)"])
def test_exported_weights_load_into_hugging_face_and_compute_the_same(tmp_path, head):
    from safetensors.torch import save_file

    overrides = [*SMALL, f"head={head}"]
    m = graphspec.load("modernbert_base", overrides)
    _, net, _ = hf_ref.generated(m, "default")
    hf_ref.perturbed(net, seed=4)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    r, out = hf_ref.exported(tmp_path, "modernbert_base", overrides, tmp_path / "w.safetensors")
    assert r.exit_code == 0, r.output
    cfg = transformers.AutoConfig.from_pretrained(out)
    cfg._attn_implementation = "eager"
    hf, info = getattr(transformers, cfg.architectures[0]).from_pretrained(out, output_loading_info=True,
                                                                          attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    x = ids(5)
    with torch.no_grad():
        out_hf = hf.eval()(input_ids=x)
        want = out_hf.logits if head != "none" else out_hf.last_hidden_state
        assert hf_ref.rel_err(want, net(x)) < RTOL


@pytest.mark.parametrize("sets, words", [
    (["encoder.attention=[global, local(8), local(16), global]"], "a ModernBertConfig has one local_attention"),
    (["encoder.attention=causal"], "a ModernBertConfig's layers are global or local"),
    (['encoder.block=[["norm(attn_norm)", attn], ["norm(mlp_norm)", mlp]]'], "cannot describe this spec exactly"),
])
def test_a_modernbert_no_config_describes_is_refused(tmp_path, sets, words):
    r, out = hf_ref.exported(tmp_path, "modernbert_base", [*SMALL, *sets])
    assert r.exit_code == 2 and words in r.output, r.output
    assert not out.exists()


# -- a local band beside other masks and biases (found in review) ------------------------------------
MIXED = """name: mixed
vars: d=32, h=4, L=3, vocab=50, seq_len=16
input: tokens(seq_len)
embed: tokens(vocab, dim=d, pos=POS)
ROLE×L:
  dim: d
  heads: h
  attention: MASKS
  mlp: mlp(64, gelu)
  final_norm: true
head: none
"""


@pytest.mark.parametrize("role, pos, masks", [
    ("decoder", "rope(10000)", "pattern(causal, local(6))"),  # the causal layers keep is_causal
    ("decoder", "rope(10000)", "pattern(sliding(4), local(6))"),  # one per-layer band or the other
    ("encoder", "rope(10000)", "pattern(global, sliding(4), local(6))"),
    ("encoder", "relative_buckets(8, 16)", "local(6)"),  # T5's bias and a band: left unfused
    ("encoder", "relative_buckets(8, 16)", "sliding(6)"),
    ("encoder", "relative_buckets(8, 16)", "chunked(4)"),
])
def test_generated_module_keeps_every_layers_mask(tmp_path, role, pos, masks):
    """The generated module (default passes: fused attention and q|k|v) against the interpreter of
    the unfused graph as lowered, on the same weights."""
    (tmp_path / "m.yaml").write_text(MIXED.replace("ROLE", role).replace("POS", pos).replace("MASKS", masks))
    m = graphspec.load(tmp_path / "m.yaml")
    _, ref, _ = hf_ref.generated(m, "none")
    hf_ref.perturbed(ref, seed=3)
    params = dict(ref.state_dict())
    fused = {}
    for k, v in params.items():  # passes.fuse_qkv: attn.qkv = q | k | v along dim 0
        if ".attn.q." in k:
            fused[k.replace(".attn.q.", ".attn.qkv.")] = torch.cat([params[k.replace(".q.", f".{p}.")] for p in "qkv"])
        elif ".attn.k." not in k and ".attn.v." not in k:
            fused[k] = v
    _, net, src = hf_ref.generated(m, "default")
    net.load_state_dict(fused, strict=True)
    x = torch.randint(0, 50, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = run(m.graph, {m.graph.inputs[0].name: x}, params)[m.graph.outputs[0]]
        assert hf_ref.rel_err(net(x), want) < RTOL


def test_export_refuses_local_layers_without_rope(tmp_path):
    r, out = hf_ref.exported(tmp_path, "modernbert_base", [*SMALL, "encoder.attention=pattern(global, local(8, pos=none) * 2)"])
    assert r.exit_code == 2 and "a ModernBertConfig's layers rotate with RoPE" in r.output, r.output
    assert not out.exists()


def test_import_refuses_a_rope_base_of_zero(tmp_path):
    r, path = imported(tmp_path, {**LEGACY, "global_rope_theta": 0})
    assert r.exit_code == 2 and "option global_rope_theta = 0 is not expressible" in r.output, r.output


@pytest.mark.parametrize("sets, message", [
    (["encoder.attention=pattern(global(global=1), local(8))"], "global() has no argument 'global'"),
    (["embed=tokens(vocab, dim=d, norm=layer_norm(bias=maybe))"], "layer_norm() argument `bias` must be bool"),
    (["embed=tokens(vocab, dim=d, norm=layer_norm(1e-5, bias=false), eps=1e-3)"], "eps= is the ε of norm=true"),
])
def test_messages_name_what_was_written(sets, message):
    r = CliRunner().invoke(main, ["flops", "modernbert_base", *[a for s in sets for a in ("--set", s)]])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert r.output.count("error:") == 1 and "globa_" not in r.output


def test_global_inside_a_quoted_string_stays_as_written():
    from graphspec.spec.expr import Call, evaluate

    assert evaluate("f(name='a global b', x=global)", {}, calls=True) == Call("f", (), {"name": "a global b",
                                                                                      "x": Call("global")})


def test_import_weights_reads_a_saved_masked_lm(tmp_path):
    """`graphspec import-weights` of a ModernBertForMaskedLM saved by save_pretrained (its tied
    decoder.weight written once): the generated module loads the file strictly and computes HF's logits."""
    from safetensors.torch import load_file

    cfg = transformers.ModernBertConfig(vocab_size=128, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                        intermediate_size=96, local_attention=8, attn_implementation="eager", **TOKENS)
    hf = hf_ref.random_hf(transformers.ModernBertForMaskedLM, cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    overrides = [*SMALL, "head=mlm(gelu, eps=1e-5, bias=false)"]
    r = CliRunner().invoke(main, ["import-weights", "modernbert_base", str(tmp_path / "hf"), "-o",
                                  str(tmp_path / "w.safetensors"), *[a for s in overrides for a in ("--set", s)]])
    assert r.exit_code == 0, r.output
    _, net, _ = hf_ref.generated(graphspec.load("modernbert_base", overrides), "none")
    net.load_state_dict(load_file(str(tmp_path / "w.safetensors")), strict=True)
    x = ids(9)
    with torch.no_grad():
        assert hf_ref.rel_err(net(x), hf(input_ids=x).logits) < RTOL
