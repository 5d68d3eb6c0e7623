"""DETR-R50 computes what Hugging Face's DetrForObjectDetection computes (issue #6, numerics).

A small variant (128×160 image, so a 4×5 map after the stride-32 backbone; 3 encoder and
3 decoder layers, so that two auxiliary outputs check their order; the full ResNet-50 backbone,
100 queries, 92 classes) gets graphspec's random weights and BatchNorm statistics
(interpret.init_params: running_var ~ U(0.5, 1.5), so the frozen BNs do something), moved into
HF by weights.from_graphspec and back by to_graphspec.
HF's ResNet (downsample_in_bottleneck=False) strides in the 3×3 conv, as torchvision v1.5 does,
and its stem pool is 3×3/2 with padding 1: the same backbone.

NOTE: [HF's auxiliary decoding differs from the official DETR] The official TransformerDecoder
(facebookresearch/detr models/transformer.py) appends `norm(output)` to its intermediate
outputs but feeds the un-normed `output` to the next layer; its last output is normed once.
HF with `auxiliary_loss=True` (transformers 5.x DetrDecoder.forward) norms `hidden_states` in
place, so the next layer reads the normed states and the last output is normed twice. graphspec
follows the official code. The reference for the auxiliary outputs is therefore built from HF
with `auxiliary_loss=False` (the official final output) and its per-layer `decoder_hidden_states`
passed through HF's own `decoder.layernorm`, `class_labels_classifier` and `bbox_predictor`;
`test_hf_auxiliary_loss_is_not_the_official_decoder` pins the difference down.
"""

import pytest
import torch

import graphspec
from graphspec import analysis
from graphspec.interpret import init_params, random_inputs, run
from graphspec.ops.conv import sine_pos_2d
from graphspec.passes import run_pipeline
from graphspec.weights import from_graphspec, name_map, to_graphspec

transformers = pytest.importorskip("transformers")

L = 3
SMALL = ("height=128", "width=160", f"L={L}")
TOL = {"atol": 1e-4, "rtol": 1e-4}


def hf_detr(aux: bool = False):
    cfg = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
                                  backbone_config=transformers.ResNetConfig(out_features=["stage4"]),
                                  num_labels=91, encoder_layers=L, decoder_layers=L, auxiliary_loss=aux)
    assert cfg.backbone_config.downsample_in_bottleneck is False  # stride in the 3×3 conv (v1.5)
    return transformers.DetrForObjectDetection(cfg).eval()


@pytest.fixture(scope="module")
def small():
    return graphspec.load("detr_r50", list(SMALL))


@pytest.fixture(scope="module")
def hf(small):
    model = hf_detr()
    model.load_state_dict(from_graphspec(init_params(small.graph, seed=0), small.graph, "detr",
                                         like=model.state_dict()), strict=True)
    return model


@pytest.fixture(scope="module")
def image(small):
    return random_inputs(small.graph, seed=1)["image"]  # (1, 3, 128, 160) ~ N(0, 1)


@pytest.fixture(scope="module")
def reference(hf, image):
    """HF's outputs under graphspec's output names: `class_embed`/`bbox_embed.boxes` for the last
    decoder layer, `…_i` for layer L-1-i (official auxiliary outputs, see the NOTE above)."""
    B, _, H, W = image.shape
    with torch.no_grad():
        o = hf(pixel_values=image, pixel_mask=torch.ones(B, H, W, dtype=torch.long), output_hidden_states=True)
        # (zeros fed to layer 0, output of layer 0, ..., of layer L-2, last_hidden_state): HF's
        # capture_outputs puts the final, normed output in the last slot, not layer L-1's own
        hs = o.decoder_hidden_states
        assert len(hs) == L + 1 and not hs[0].any()  # object queries start from zeros
        out = {"class_embed": o.logits, "bbox_embed.boxes": o.pred_boxes}
        for i in range(1, L):
            h = hf.model.decoder.layernorm(hs[L - i])  # official: norm(output of layer L-1-i)
            out[f"class_embed_{i}"] = hf.class_labels_classifier(h)
            out[f"bbox_embed.boxes_{i}"] = hf.bbox_predictor(h).sigmoid()
    return out


def close(ours: dict, ref: dict) -> None:
    assert list(ours) == list(ref)  # final layer first, then layers L-2, ..., 0
    for k in ref:
        torch.testing.assert_close(ours[k], ref[k], **TOL, msg=lambda m, k=k: f"output {k}: {m}")


def test_weight_names_cover_hf_both_ways(small, hf):
    g = small.graph
    params = init_params(g, seed=0)
    names = {**analysis.parameters(g), **analysis.buffers(g)}
    assert set(params) == set(names)
    hf_sd = hf.state_dict()
    # parameters: 53 backbone convs + input_proj 2 + query_embed 1 + decoder.norm 2 + heads 2 + 6,
    # 16 per encoder layer (4 linears + 2 norms, weight and bias) and 26 per decoder layer (8 + 3);
    # buffers: 53 FrozenBatchNorm2d × 4. The same count of tensors on both sides.
    assert len(hf_sd) == len(names) == 53 + 2 + 1 + 2 + 2 + 6 + (16 + 26) * L + 53 * 4
    back = to_graphspec(hf, g)
    assert set(back) == set(names) and all(torch.equal(back[k], params[k]) for k in names)
    # DETR freezes conv1 and layer1 (backbone.py): HF's stem and stages.0, 1 + 3·3 + 1 = 11 convs.
    # NB: HF 5.x with its own ResNet freezes more: DetrConvEncoder keeps only names containing
    # "stage.1/2/3" trainable, and the ResNet's names read "stages.1", so all 53 convs are frozen
    # (18,069,856 trainable, not 41,302,368). That changes training, not these numbers.
    names_in_hf = name_map(g, "detr", like=hf_sd)
    ours = {n for k in analysis.frozen(g) for n in names_in_hf[k]}
    assert len(ours) == 11 and all(".embedder." in n or ".stages.0." in n for n in ours)
    assert ours <= {k for k, p in hf.named_parameters() if not p.requires_grad}


def test_sine_positions_are_hf_detrs():
    """DetrSinePositionEmbedding(normalize=True) on an unpadded 25×34 map (800×1066 input)."""
    from transformers.models.detr.modeling_detr import DetrSinePositionEmbedding

    pe = DetrSinePositionEmbedding(128, normalize=True)
    ref = pe(shape=torch.Size([1, 2048, 25, 34]), device="cpu", dtype=torch.float32,
             mask=torch.ones(1, 25, 34, dtype=torch.bool))
    ref = ref.flatten(2).transpose(1, 2)  # 1, 850, 256: y features, then x
    torch.testing.assert_close(sine_pos_2d(25, 34, 256), ref, atol=1e-6, rtol=0)


def test_interpreter_matches_hf(small, hf, image, reference):
    close(run(small.graph, {"image": image}, to_graphspec(hf, small.graph)), reference)


def test_generated_module_matches_hf(small, hf, image, reference):
    module = small.to_torch().eval()
    module.load_state_dict(to_graphspec(hf, small.graph), strict=True)  # FrozenBatchNorm2d buffers too
    with torch.no_grad():
        outs = module(image)
    close(dict(zip(small.graph.outputs, outs, strict=True)), reference)


def test_default_pipeline_matches_hf(small, hf, image, reference):
    """After fuse_attention, fuse_qkv (DETR's q and k share x + pos: `attn.qk`), cse and dce."""
    g, report = run_pipeline(small.graph, "default")
    state = to_graphspec(hf, g)  # reads the fused `attn.qk` layout
    assert any(k.endswith("attn.qk.weight") for k in state)
    close(run(g, {"image": image}, state), reference)
    module = graphspec.Model(small.spec, g).to_torch().eval()
    module.load_state_dict(state, strict=True)
    with torch.no_grad():
        close(dict(zip(g.outputs, module(image), strict=True)), reference)


def test_hf_auxiliary_loss_is_not_the_official_decoder(small, hf, image, reference):
    """HF with auxiliary_loss=True: layer 0's intermediate output is the official one (its input
    is zeros either way), but layer 1 reads normed states and the last output is normed twice,
    so its final logits are not the official ones. If this fails, HF follows the official
    decoder now and `reference` may use intermediate_hidden_states directly."""
    aux = hf_detr(aux=True)
    aux.load_state_dict(hf.state_dict(), strict=True)
    B, _, H, W = image.shape
    with torch.no_grad():
        o = aux.model(pixel_values=image, pixel_mask=torch.ones(B, H, W, dtype=torch.long))
        first = aux.class_labels_classifier(o.intermediate_hidden_states[0])
        final = aux.class_labels_classifier(o.last_hidden_state)
    torch.testing.assert_close(first, reference[f"class_embed_{L - 1}"], **TOL)
    assert (final - reference["class_embed"]).abs().max() > 1e-2
