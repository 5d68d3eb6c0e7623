"""DINOv2 (Oquab et al. 2023) and DINOv2 with registers (Darcet et al. 2024) against Hugging Face.

Two constructs: `layer_scale: 1e-5` (a stack field; CaiT's LayerScale, x · γ at the end of each
residual branch, `ls1` / `ls2` as in the official code) and `patches(..., registers=4)` (learned
tokens after [class], outside the position table). The references are transformers' Dinov2Model
and Dinov2WithRegistersModel, built from Config objects with random weights (perturbed so that
a misplaced γ or register shows): the generated module loads their state dict (graphspec.weights,
family dinov2) and computes their last_hidden_state, as do the interpreter, ONNX and TVM. Counts:
parameters equal HF's on the meta device less its `mask_token` (dim; iBOT's masked pre-training
only), MACs equal FlopCounterMode / 2 of HF's eager forward, at the released 518 × 518.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.interpret import run
from graphspec.weights import from_graphspec, to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

RTOL = 1e-5
SMALL = ["img_size=56", "grid=4", "D=64", "L=2", "h=4", "batch=2"]
# bundled spec -> (overrides for a small model, HF config arguments beyond the shared ones)
CASES = {
    "dinov2_s14": (SMALL, {}),
    "dinov2_b14_reg": (SMALL, {"num_register_tokens": 4}),
    "dinov2_g14": (SMALL + ["d_ff=176"], {"use_swiglu_ffn": True}),  # (int(4 · 64 · 2/3) + 7) // 8 · 8 = 176
}
# the released models (the Hub's facebook/dinov2-* configs): width, blocks, heads, SwiGLU
SIZES = {"dinov2_s14": (384, 12, 6, False), "dinov2_b14": (768, 12, 12, False), "dinov2_l14": (1024, 24, 16, False),
         "dinov2_g14": (1536, 40, 24, True), "dinov2_b14_reg": (768, 12, 12, False)}


def hf_config(registers=0, **kw):
    if registers or "num_register_tokens" in kw:
        return transformers.Dinov2WithRegistersConfig(**kw, attn_implementation="eager")
    return transformers.Dinov2Config(**kw, attn_implementation="eager")


def hf_class(cfg):
    return transformers.Dinov2WithRegistersModel if cfg.model_type == "dinov2_with_registers" else transformers.Dinov2Model


def small_hf(extra: dict):
    cfg = hf_config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4, image_size=56,
                    patch_size=14, layer_norm_eps=1e-6, layerscale_value=1e-5, **extra)
    hf = hf_ref.random_hf(hf_class(cfg), cfg)
    with torch.no_grad():  # γ far from its init (1e-5, which would hide every branch) and from 1
        for name, p in hf.named_parameters():
            if name.endswith("lambda1"):
                p.uniform_(0.5, 1.5)
    return hf


def image(seed=2):
    return torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_module_and_interpreter_compute_hugging_faces_features(name, passes):
    overrides, extra = CASES[name]
    hf = small_hf(extra)
    m = graphspec.load(name, overrides)
    assert m.params() == hf_ref.n_params(hf) - 64  # all but HF's mask_token
    graph, net, src = hf_ref.generated(m, passes)
    assert "self.ls1 = LayerScale(dim, init_values=1e-05)" in src
    assert "x = x + self.ls1(self.attn(self.norm1(x)))" in src
    net.load_state_dict(to_graphspec(hf, graph, "dinov2"), strict=True)
    x = image()
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
        assert hf_ref.rel_err(net(x), want) < RTOL
        got = run(graph, {graph.inputs[0].name: x}, to_graphspec(hf, graph, "dinov2"))[graph.outputs[0]]
        assert hf_ref.rel_err(got, want) < RTOL
    back = from_graphspec(net.state_dict(), graph, "dinov2", like=hf.state_dict())
    assert set(hf.state_dict()) - set(back) == {"embeddings.mask_token"}


def test_registers_sit_after_the_class_token_without_positions():
    """The sequence is [class] + pos_0, the registers (no positions), then the patches + their
    positions. Built here by hand from HF's own pieces and run through HF's encoder and final norm:
    that layout reproduces HF's output; registers in front of [class] give HF's rows in another
    order, and registers carrying positions other values, both far from the generated module's."""
    hf = small_hf({"num_register_tokens": 4})
    m = graphspec.load("dinov2_b14_reg", SMALL)
    graph, net, src = hf_ref.generated(m, "default")
    assert "torch.cat([x[:, :1], register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]], dim=1)" in src
    assert "self.pos_embed = nn.Parameter(torch.zeros(1, 17, 64))" in src  # 1 + 16 patches: no registers
    e = hf.embeddings
    with torch.no_grad():  # HF initialises the registers to zeros, which would hide a misplacement
        torch.nn.init.normal_(e.register_tokens)
        torch.nn.init.normal_(e.cls_token)
    net.load_state_dict(to_graphspec(hf, graph, "dinov2"), strict=True)
    x = image()
    with torch.no_grad():
        patches = e.patch_embeddings(x)  # B, 16, d
        pos = e.position_embeddings  # 1, 17, d: [class] and the 4×4 grid, at the table's own size
        cls = (e.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
        reg = e.register_tokens.expand(x.shape[0], -1, -1)
        body = patches + pos[:, 1:]

        def encode(tokens):
            return hf.layernorm(hf.encoder(tokens).last_hidden_state)

        got = net(x)
        want = hf(pixel_values=x).last_hidden_state
        assert hf_ref.rel_err(got, want) < RTOL
        assert hf_ref.rel_err(encode(torch.cat([cls, reg, body], 1)), want) < RTOL  # the hand-built layout is HF's
        moved = encode(torch.cat([reg, cls, body], 1))  # registers in front of [class]
        positioned = encode(torch.cat([cls, reg + pos[:, 1:5], body], 1))  # registers with the first positions
        # attention is permutation-equivariant: moved tokens show in the rows' order (row 0 is [class] in
        # both, the features downstream heads read), and are otherwise the same rows
        assert hf_ref.rel_err(got, moved) > 1e-2 and hf_ref.rel_err(moved[:, :1], got[:, :1]) > 1e-2
        assert hf_ref.rel_err(got, torch.cat([moved[:, 4:5], moved[:, :4], moved[:, 5:]], 1)) < RTOL
        assert hf_ref.rel_err(got, positioned) > 1e-2


def test_layer_scale_matters():
    """γ = 1 (as if there were no LayerScale) differs from the model's γ by more than the tolerance."""
    hf = small_hf({})
    m = graphspec.load("dinov2_s14", SMALL)
    graph, net, _ = hf_ref.generated(m, "none")
    net.load_state_dict(to_graphspec(hf, graph, "dinov2"), strict=True)
    x = image()
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
        for blk in net.blocks:
            blk.ls1.gamma.fill_(1.0)
        assert hf_ref.rel_err(net(x), want) > 1e-3


def test_onnx_and_tvm_compute_hugging_faces_features():
    hf = small_hf({"num_register_tokens": 4})
    m = graphspec.load("dinov2_b14_reg", SMALL)
    x = image()
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
    arrays = {k: v.detach().numpy() for k, v in to_graphspec(hf, m.graph, "dinov2").items()}
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    (got,) = gx.run(gx.export(m.graph, arrays), {m.graph.inputs[0].name: x.numpy()})
    assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    low = gt.lower(m.graph)
    (got,) = gt.Runner(gt.build(low, "llvm")[0], low.params, arrays)(x.numpy())
    assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4


def released(name: str):
    d, L, h, swiglu = SIZES[name]
    cfg = hf_config(registers=4 if name.endswith("_reg") else 0, hidden_size=d, num_hidden_layers=L,
                    num_attention_heads=h, mlp_ratio=4, image_size=518, patch_size=14, layer_norm_eps=1e-6,
                    use_swiglu_ffn=swiglu, **({"num_register_tokens": 4} if name.endswith("_reg") else {}))
    return hf_ref.meta(hf_class(cfg), cfg), d


@pytest.mark.parametrize("name", sorted(SIZES))
def test_bundled_params_equal_hugging_face_on_meta(name):
    hf, d = released(name)
    m = graphspec.load(name)
    assert m.params() == hf_ref.n_params(hf) - d == m.spec.expect["params"]


@pytest.mark.parametrize("name", ["dinov2_s14", "dinov2_b14_reg", "dinov2_g14"])
def test_bundled_macs_equal_flop_counter_at_518(name):
    hf, _ = released(name)
    with FlopCounterMode(display=False) as fc:
        hf(pixel_values=torch.empty(1, 3, 518, 518, device="meta"))
    assert graphspec.load(name).macs() == fc.get_total_flops() // 2 == graphspec.load(name).spec.expect["macs"]


@pytest.mark.parametrize("name, published, off", [("dinov2_s14", 21e6, 0.051), ("dinov2_b14", 86e6, 0.007),
                                                  ("dinov2_l14", 300e6, 0.015), ("dinov2_g14", 1100e6, 0.034)])
def test_published_sizes(name, published, off):
    """The README's 21 M / 86 M / 300 M / 1,100 M are rounded down: 22.06 M (5.0 % more: the
    "21 M" does not reproduce; DeiT-S, the same widths at /16, is "22M"), 86.58 M, 304.4 M, 1,136 M."""
    assert 0 < graphspec.load(name).params() / published - 1 < off


@pytest.mark.parametrize("text, message", [
    ("layer_scale: -1", "layer_scale must be ≥ 0"),
    ("layer_scale: true", "layer_scale must be float"),
    ("layer_scale: big", "undefined variable 'big'"),
])
def test_bad_layer_scale_is_a_located_exit_2(tmp_path, text, message):
    spec = (graphspec.SPECS_DIR / "dinov2_s14.yaml").read_text(encoding="utf-8").replace("layer_scale: 1e-5", text)
    (tmp_path / "bad.yaml").write_text(spec, encoding="utf-8")
    r = CliRunner().invoke(main, ["flops", str(tmp_path / "bad.yaml")])
    assert r.exit_code == 2, r.output
    assert message in r.output and "bad.yaml:" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("sets, message", [
    (["head=classifier(10, pool=mean)"], "would average the register tokens"),
    (["embed.registers=-1"], "registers must be ≥ 0"),
    (["embed.registers=99999999"], "graphspec allows at most 4096 register tokens"),
])
def test_bad_registers_are_a_located_exit_2(sets, message):
    r = CliRunner().invoke(main, ["flops", "dinov2_b14_reg", *[a for s in sets for a in ("--set", s)]])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("off", ["none", "false"])
def test_layer_scale_none_is_no_layer_scale(off):
    m = graphspec.load("dinov2_s14", [f"encoder.layer_scale={off}"])
    assert not any(n.op == "layer_scale" for n in m.graph)
    assert m.params() == graphspec.load("dinov2_s14").params() - 12 * 2 * 384


def test_registers_with_windows_are_refused(tmp_path):
    text = ("name: x\ninput: image(64)\nembed: patches(4, dim=32, registers=2)\n"
            "encoder×2: {dim: 32, heads: 2, attention: windowed(4)}\nhead: none\n")
    (tmp_path / "w.yaml").write_text(text, encoding="utf-8")
    r = CliRunner().invoke(main, ["flops", str(tmp_path / "w.yaml")])
    assert r.exit_code == 2 and "register tokens do not fit windowed or spatial-reduction attention" in r.output
    assert "w.yaml:3:8" in r.output


def test_registers_with_pyramid_stages_are_refused_at_the_embedding():
    r = CliRunner().invoke(main, ["flops", "pvt_tiny", "--set", "embed.registers=2"])
    assert r.exit_code == 2 and "register tokens do not fit" in r.output and "to_map" not in r.output, r.output


# -- graphspec import (graphspec/interchange/hf_import_dinov2.py) --------------------------------
def imported(tmp_path, cfg, *args):
    """`cfg` written as config.json (to_json_file) and `graphspec import`ed: (exit code, output, model)."""
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    out = tmp_path / "imported.yaml"
    r = CliRunner().invoke(main, ["import", str(path), "-o", str(out), *args])
    return r.exit_code, r.output, (graphspec.load(out) if r.exit_code == 0 else None)


@pytest.mark.parametrize("mt", ["dinov2", "dinov2_with_registers"])
def test_import_defaults_are_the_config_classes(mt):
    from graphspec.interchange.defaults import DEFAULTS

    cfg = {"dinov2": transformers.Dinov2Config, "dinov2_with_registers": transformers.Dinov2WithRegistersConfig}[mt]()
    for key, value in DEFAULTS[mt].items():
        if value is not None:
            assert getattr(cfg, key) == value, key


IMPORTS = {  # config arguments -> whether HF's model holds a mask_token
    "defaults": (dict(), True),
    "s14 at 518": (dict(hidden_size=384, num_attention_heads=6, image_size=518), True),
    "g14, no mask token": (dict(hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, use_swiglu_ffn=True,
                                image_size=518, use_mask_token=False), False),
    "registers, grey, no qkv bias": (dict(num_register_tokens=2, num_channels=1, qkv_bias=False, mlp_ratio=2,
                                          layerscale_value=1e-5), True),
}


@pytest.mark.parametrize("case", sorted(IMPORTS))
def test_imported_params_equal_hugging_face_on_meta(tmp_path, case):
    kw, mask = IMPORTS[case]
    cfg = hf_config(**kw)
    code, out, m = imported(tmp_path, cfg)
    assert code == 0, out
    want = hf_ref.n_params(hf_ref.meta(hf_class(cfg), cfg))
    assert m.params() == want - (cfg.hidden_size if mask else 0)
    text = (tmp_path / "imported.yaml").read_text(encoding="utf-8")
    assert ("mask_token" in text) == mask


@pytest.mark.parametrize("name, kw", [("dinov2_s14", dict(hidden_size=384, num_attention_heads=6)),
                                      ("dinov2_g14", dict(hidden_size=1536, num_hidden_layers=40, num_attention_heads=24,
                                                          use_swiglu_ffn=True)),
                                      ("dinov2_b14_reg", dict(num_register_tokens=4, patch_size=14))])
def test_released_configs_import_as_the_bundled_specs(tmp_path, name, kw):
    """The Hub's facebook/dinov2-small / -giant / dinov2-with-registers-base configs, node for node;
    only LayerScale's initial γ differs (their layerscale_value is HF's default 1.0, the bundled
    specs carry the training config's 1e-5), which changes nothing a forward pass computes."""
    code, out, m = imported(tmp_path, hf_config(image_size=518, **kw))
    assert code == 0, out
    bundled = graphspec.load(name)

    def nodes(g, init):
        return [(n.name, n.op, n.shape, {**n.a, **({"init": init} if n.op == "layer_scale" else {})}) for n in g]

    assert [n.a["init"] for n in m.graph if n.op == "layer_scale"] == [1.0] * 2 * sum(bundled.spec.stacks[0].depths)
    assert nodes(m.graph, None) == nodes(bundled.graph, None)


def test_an_imported_spec_computes_hugging_faces_features(tmp_path):
    hf = small_hf({"num_register_tokens": 4, "use_swiglu_ffn": True})
    code, out, m = imported(tmp_path, hf.config)
    assert code == 0, out
    graph, net, _ = hf_ref.generated(graphspec.load(tmp_path / "imported.yaml", ["batch=2"]), "default")
    net.load_state_dict(to_graphspec(hf, graph, "dinov2"), strict=True)
    x = image()
    with torch.no_grad():
        assert hf_ref.rel_err(net(x), hf(pixel_values=x).last_hidden_state) < RTOL


@pytest.mark.parametrize("kw, message", [
    (dict(drop_path_rate=0.1), "drop_path_rate = 0.1 is not expressible"),
    (dict(hidden_act="quick_gelu"), "hidden_act"),
])
def test_inexpressible_configs_exit_2_naming_the_option(tmp_path, kw, message):
    code, out, _ = imported(tmp_path, hf_config(**kw))
    assert code == 2 and message in out and "config.json:" in out and "Traceback" not in out, out
    assert not (tmp_path / "imported.yaml").exists()


def test_the_classifier_imports_as_its_base_model(tmp_path):
    code, out, m = imported(tmp_path, hf_config(architectures=["Dinov2ForImageClassification"]), "--base")
    assert code == 0, out
    assert m.spec.head.kind == "none"
    assert "Dinov2ForImageClassification's head was left out" in (tmp_path / "imported.yaml").read_text()


# -- graphspec export --format hf (graphspec/interchange/hf_export.py: _dinov2) ----------------------
@pytest.mark.parametrize("name", sorted(SIZES))
def test_exported_config_describes_the_spec(tmp_path, name):
    r, out = hf_ref.exported(tmp_path, name)
    assert r.exit_code == 0, r.output
    cfg = transformers.AutoConfig.from_pretrained(out)
    hf = hf_ref.meta(getattr(transformers, cfg.architectures[0]), cfg)
    mask = hf.embeddings.mask_token.numel() if hf.embeddings.mask_token is not None else 0
    assert mask == (768 if name.endswith("_reg") else 0)  # Dinov2Config(use_mask_token=false); registers: always
    assert hf_ref.n_params(hf) - mask == graphspec.load(name).params()


@pytest.mark.parametrize("name", sorted(CASES))
def test_exported_weights_load_into_hugging_face_and_compute_the_same(tmp_path, name):
    from safetensors.torch import save_file

    overrides, _ = CASES[name]
    m = graphspec.load(name, overrides)
    _, net, _ = hf_ref.generated(m, "default")
    hf_ref.perturbed(net, seed=4)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    r, out = hf_ref.exported(tmp_path, name, overrides, tmp_path / "w.safetensors")
    assert r.exit_code == 0, r.output
    cfg = transformers.AutoConfig.from_pretrained(out)
    hf, info = getattr(transformers, cfg.architectures[0]).from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    x = image(5)
    with torch.no_grad():
        assert hf_ref.rel_err(hf.eval()(pixel_values=x).last_hidden_state, net(x)) < RTOL


@pytest.mark.parametrize("name, sets, words", [
    ("dinov2_s14", ["D=96", "h=4", "L=1", "img_size=28", "encoder.d_ff=100"], "is not one a Dinov2Config describes"),
    ("dinov2_g14", ["L=1", "img_size=28", "d_ff=4000"], "is not one a Dinov2Config describes"),
    ("dinov2_s14", ["L=1", "img_size=28", "encoder.norm=post"], "cannot describe this spec exactly"),
])
def test_a_dinov2_no_config_describes_is_refused(tmp_path, name, sets, words):
    r, out = hf_ref.exported(tmp_path, name, sets)
    assert r.exit_code == 2 and words in r.output, r.output
    assert not out.exists()


def test_import_weights_reads_hugging_face_checkpoints_with_their_mask_token(tmp_path):
    """`graphspec import-weights` of a saved Dinov2Model (mask_token included) and of a pre-5
    SwiGLU checkpoint (`mlp.weights_in` = gate | up, `mlp.weights_out`): the generated module
    loads the result strictly and computes HF's features."""
    from safetensors.torch import load_file, save_file

    hf = small_hf({"use_swiglu_ffn": True})
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    old = {}
    for k, v in sd.items():  # the layout transformers < 5 wrote
        if ".mlp.gate_proj." in k:
            old[k.replace("gate_proj", "weights_in")] = torch.cat([v, sd[k.replace("gate_proj", "up_proj")]])
        elif ".mlp.down_proj." in k:
            old[k.replace("down_proj", "weights_out")] = v
        elif ".mlp.up_proj." not in k:
            old[k] = v
    overrides, _ = CASES["dinov2_g14"]
    graph, net, _ = hf_ref.generated(graphspec.load("dinov2_g14", overrides), "none")
    x = image()
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
    for which, tensors in (("today", sd), ("before 5", old)):
        save_file(tensors, str(tmp_path / "hf.safetensors"))
        out = tmp_path / f"{which}.safetensors"
        r = CliRunner().invoke(main, ["import-weights", "dinov2_g14", str(tmp_path / "hf.safetensors"), "-o", str(out),
                                      *[a for s in overrides for a in ("--set", s)]])
        assert r.exit_code == 0, r.output
        net.load_state_dict(load_file(str(out)), strict=True)
        with torch.no_grad():
            assert hf_ref.rel_err(net(x), want) < RTOL, which


def test_hidden_dropout_is_the_embeddings_dropout(tmp_path):
    """HF's hidden_dropout_prob drops the embeddings' output only (Dinov2Embeddings.dropout): it
    imports as patches(dropout=p) and exports from there; a dropout in the blocks is refused."""
    code, out, m = imported(tmp_path, hf_config(hidden_dropout_prob=0.1))
    assert code == 0, out
    drops = [n for n in m.graph if n.op == "dropout"]
    assert [n.name for n in drops] == ["pos_drop"] and drops[0].a["p"] == 0.1
    small = ["img_size=28", "D=32", "L=1", "h=2"]
    r, hf_dir = hf_ref.exported(tmp_path, "dinov2_s14", small + ["embed=patches(patch, dim=D, cls_token=true, pos=learned, "
                                                          "dropout=0.1)"])
    assert r.exit_code == 0, r.output
    assert json.loads((hf_dir / "config.json").read_text())["hidden_dropout_prob"] == 0.1
    r, hf_dir = hf_ref.exported(tmp_path / "b", "dinov2_s14", small + ["encoder.dropout=0.1"])
    assert r.exit_code == 2 and "cannot describe this spec exactly" in r.output, r.output


# -- the position table at other image sizes (pos=learned(grid=g)) --------------------------------
@pytest.mark.parametrize("size", [28, 84])
def test_the_table_is_resampled_as_hugging_face_does(size):
    """HF's Dinov2Model built for 56 (a 4 × 4 table) run on 28² and 84² images interpolates its
    table bicubically; so does graphspec with grid=4: the generated module, the interpreter, ONNX
    and TVM compute its features, with its parameters."""
    hf = small_hf({})
    m = graphspec.load("dinov2_s14", [o if not o.startswith("img_size") else f"img_size={size}" for o in SMALL])
    assert m.params() == hf_ref.n_params(hf) - 64 and any(n.op == "interpolate_pos" for n in m.graph)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
    graph, net, src = hf_ref.generated(m, "default")
    assert f"x = x + interpolate_pos(self.pos_embed, 4, ({size // 14}, {size // 14}), 1)" in src
    params = to_graphspec(hf, graph, "dinov2")
    net.load_state_dict(params, strict=True)
    with torch.no_grad():
        assert hf_ref.rel_err(net(x), want) < RTOL
        assert hf_ref.rel_err(run(m.graph, {"image": x}, to_graphspec(hf, m.graph, "dinov2"))[m.graph.outputs[0]],
                              want) < RTOL
    arrays = {k: v.detach().numpy() for k, v in to_graphspec(hf, m.graph, "dinov2").items()}
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    (got,) = gx.run(gx.export(m.graph, arrays), {"image": x.numpy()})
    assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    low = gt.lower(m.graph)
    (got,) = gt.Runner(gt.build(low, "llvm")[0], low.params, arrays)(x.numpy())
    assert hf_ref.rel_err(torch.from_numpy(got), want) < 1e-4


def test_bundled_at_224_is_hugging_faces_518_model_at_224():
    """DINOv2 as used for features: the released 37 × 37 table on 224² images (16 × 16 patches)."""
    hf, d = released("dinov2_s14")
    m = graphspec.load("dinov2_s14", ["img_size=224"])
    with FlopCounterMode(display=False) as fc:
        hf(pixel_values=torch.empty(1, 3, 224, 224, device="meta"))
    assert m.params() == hf_ref.n_params(hf) - d == 22_056_192
    assert m.macs() == fc.get_total_flops() // 2 == 6_123_561_984


def test_a_bad_grid_is_a_located_exit_2():
    r = CliRunner().invoke(main, ["flops", "dinov2_s14", "--set", "grid=0"])
    assert r.exit_code == 2 and "grid" in r.output and "Traceback" not in r.output, r.output
