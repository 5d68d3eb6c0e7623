"""The IR interpreter: every op has an `eval` rule, and the Swin machinery follows the official
code, checked against Hugging Face transformers' independent implementation."""

import pytest
import torch

import graphspec
from graphspec.interpret import InterpretError, init_params, random_inputs, rename_params, run
from graphspec.ops import REGISTRY
from graphspec.ops.attention import relative_position_index, shift_mask_table


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_has_an_eval_rule(name):
    assert REGISTRY[name].eval is not None, f"{name}: no `eval` rule beside its other rules"


def test_shift_mask_is_the_official_one():
    """Swin-T stage 1: 56×56 map, M=7, shift 3. Compared with HF's SwinLayer.get_attn_mask, an
    independent (vectorised) implementation of the official mask."""
    from transformers import SwinConfig
    from transformers.models.swin.modeling_swin import SwinLayer

    layer = SwinLayer(SwinConfig(window_size=7), dim=96, input_resolution=(56, 56), num_heads=3, shift_size=3)
    ref = layer.get_attn_mask(56, 56, dtype=torch.float32, device=torch.device("cpu"))
    ours = torch.from_numpy(shift_mask_table(56, 56, 7, 3))
    assert ours.shape == ref.shape == (64, 49, 49)  # (56/7)² = 64 windows of 7² = 49 tokens
    assert torch.equal(ours, ref)
    assert set(ours.unique().tolist()) == {-100.0, 0.0}
    # only the last row and column of windows straddle the wrapped regions: 64 - 7·7 = 15 masked
    assert int((ours != 0).flatten(1).any(1).sum()) == 15


def test_shift_mask_node_of_swin_t_evaluates_to_the_official_mask():
    g = graphspec.load("swin_t").graph
    node = g["layers.0.blocks.1.attn.shift_mask"]
    value = REGISTRY[node.op].eval({}, **node.a)
    assert torch.equal(value, torch.from_numpy(shift_mask_table(56, 56, 7, 3)))


@pytest.mark.parametrize("window", [2, 4, 7, 12])
def test_relative_position_index_is_the_official_one(window):
    from transformers.models.swin.modeling_swin import SwinRelativePositionBias

    ref = SwinRelativePositionBias(num_heads=2, window_size=(window, window)).relative_position_index
    assert torch.equal(torch.from_numpy(relative_position_index(window)).view(-1), ref.view(-1))


def _hf_swin_names(name: str) -> str:
    """graphspec (official Swin) parameter names -> HF SwinForImageClassification's (5.x)."""
    subs = [("patch_embed.proj", "swin.embeddings.patch_embeddings.projection"),
            ("patch_embed.norm", "swin.embeddings.norm"), ("layers.", "swin.encoder.layers."),
            (".norm1", ".layernorm_before"), (".norm2", ".layernorm_after"),
            (".attn.q.", ".attention.q_proj."), (".attn.k.", ".attention.k_proj."),
            (".attn.v.", ".attention.v_proj."), (".attn.proj.", ".attention.o_proj."),
            (".attn.relative_position_bias_table", ".attention.relative_position_bias.relative_position_bias_table")]
    if name.startswith("norm."):
        return "swin.layernorm." + name[5:]
    if name.startswith("head."):
        return "classifier." + name[5:]
    for a, b in subs:
        name = name.replace(a, b)
    return name


def test_swin_interpreter_matches_hf_swin():
    """A whole small Swin (128 px, C=48, M=4, shifted windows, patch merging) run by the
    interpreter equals HF's SwinForImageClassification with the same weights."""
    from transformers import SwinConfig, SwinForImageClassification

    g = graphspec.load("swin_t", ["img_size=128", "C=48", "M=4", "classes=10", "drop_path=0",
                                  "encoder.depths=[2, 2, 2, 2]"]).graph
    params = init_params(g, seed=0)
    cfg = SwinConfig(image_size=128, patch_size=4, embed_dim=48, depths=[2, 2, 2, 2], num_heads=[3, 6, 12, 24],
                     window_size=4, num_labels=10, drop_path_rate=0.0, hidden_act="gelu")
    hf = SwinForImageClassification(cfg).eval()
    state = {_hf_swin_names(k): v for k, v in params.items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("relative_position_index" in k for k in missing), (missing, unexpected)
    x = random_inputs(g, seed=1)
    ours = run(g, x, params)["head"]
    with torch.no_grad():
        ref = hf(pixel_values=x["image"]).logits
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_run_checks_every_shape_against_the_ir():
    g = graphspec.load("vit_b16", ["img_size=32", "patch=8", "D=32", "L=1", "h=2", "classes=5"]).graph
    bad = g.copy_with([n.evolve(shape=(1, 17, 33)) if n.name == "with_pos" else n for n in g])
    with pytest.raises(InterpretError, match=r"%with_pos = add.*the IR says \(1, 17, 33\)"):
        run(bad, random_inputs(g), init_params(g))


def test_init_params_depend_on_the_name_only():
    a = graphspec.load("gpt2", ["L=1", "d=32", "h=2", "vocab=50", "n_ctx=16", "seq_len=8"]).graph
    b = graphspec.load("gpt2", ["L=2", "d=32", "h=2", "vocab=50", "n_ctx=16", "seq_len=8"]).graph
    pa, pb = init_params(a), init_params(b)
    assert set(pa) < set(pb)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_rename_params_concatenates_along_dim0():
    p = {"a.q.weight": torch.ones(2, 3), "a.k.weight": 2 * torch.ones(2, 3)}
    out = rename_params(p, {"a.qk.weight": ("a.q.weight", "a.k.weight")})
    assert list(out) == ["a.qk.weight"] and out["a.qk.weight"].shape == (4, 3)
    assert out["a.qk.weight"][2:].eq(2).all()
