"""The importer of DINOv2 (Oquab et al. 2023) and DINOv2 with registers (Darcet et al. 2024), in
the layout of specs/dinov2_s14.yaml: `model_type: dinov2` (Dinov2Model) and
`dinov2_with_registers` (Dinov2WithRegistersModel).

    image_size, patch_size, num_channels  -> image(img_size), patches(patch, cls_token=true,
                                             pos=learned(grid=image_size // patch_size)): the table, which
                                             HF resamples bicubically to other inputs, as graphspec does
    num_register_tokens                   -> patches(..., registers=R)
    hidden_dropout_prob                   -> patches(..., dropout=p) (HF's only use of it: after the embeddings)
    hidden_size, num_hidden_layers, num_attention_heads, mlp_ratio, hidden_act, layer_norm_eps,
    qkv_bias, attention_probs_dropout_prob -> the encoder (pre-LN, final norm = layernorm)
    layerscale_value                      -> layer_scale: value (γ's initial value)
    use_swiglu_ffn                        -> mlp: glu(d_ff, silu), d_ff = (int(2/3 · D · mlp_ratio) + 7) // 8 · 8
                                             (HF's Dinov2SwiGLUFFN; silu whatever hidden_act says)

HF's models also hold a `mask_token` (dim) that only masked-image pre-training reads; the spec
leaves it out, so its parameters are the HF model's less `hidden_size` when the config keeps it
(`use_mask_token`, true by default; always with registers), and say so in the header. The
backbone API's keys (stage_names, out_features, out_indices, apply_layernorm,
reshape_hidden_states) change nothing the base model computes. A `drop_path_rate` other than 0 is
refused: HF drops every block's branch at the same rate, graphspec's rate rises linearly over the
blocks (timm's schedule). Dinov2ForImageClassification's head, a linear map of [class] ‖ the patch
tokens' mean (registers left out), is `classifier(n, pool=cls_mean)`.
"""

from __future__ import annotations

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _classes, _head, num

BACKBONE_ONLY = ("stage_names", "out_features", "out_indices", "apply_layernorm", "reshape_hidden_states")


def _dinov2(r: Reader, s: Spec, registers: bool = False) -> None:
    d = r.int("hidden_size")
    img, patch = r.int("image_size"), r.int("patch_size")
    s.var("img_size", img), s.var("patch", patch)
    s.var("grid", img // patch), s.var("D", d)  # HF's table: (image_size // patch)² rows, resampled to the input
    s.var("L", r.int("num_hidden_layers")), s.var("h", r.int("num_attention_heads"))
    ratio = r.float("mlp_ratio", minimum=0)
    swiglu = r.bool("use_swiglu_ffn")
    hidden = int(d * ratio)
    s.var("d_ff", (int(hidden * 2 / 3) + 7) // 8 * 8 if swiglu else hidden), s.var("batch", 1)
    for k in BACKBONE_ONLY:
        r.raw(k)
    channels = r.int("num_channels")
    s.input = "image(img_size)" if channels == 3 else f"image(img_size, channels={channels})"
    regs = r.int("num_register_tokens", minimum=0) if registers else 0
    drop = r.float("hidden_dropout_prob", default=0)  # HF's one dropout: the embeddings' output
    s.embed = ("patches(patch, dim=D, cls_token=true, pos=learned(grid=grid)" + (f", registers={regs}" if regs else "")
               + (f", dropout={num(drop)}" if drop else "") + ")")
    if r.float("drop_path_rate", default=0) != 0:
        r.error("drop_path_rate", f"option drop_path_rate = {show(r.data['drop_path_rate'])} is not expressible in "
                "graphspec: HF drops every block's branch at this rate, graphspec's drop_path rises linearly over the "
                "blocks", "import with drop_path_rate 0 (inference is the same) and set `drop_path:` by hand")
    fields = [("dim", "D"), ("heads", "h")]
    if swiglu:
        r.raw("hidden_act")  # HF's SwiGLU is silu whatever hidden_act says
        fields.append(("mlp", '"glu(d_ff, silu)"'))
    else:
        fields += [("d_ff", "d_ff"), ("act", _act(r, "hidden_act"))]
    fields += [("norm", "pre"), ("eps", r.float("layer_norm_eps")),
               ("attn_dropout", r.float("attention_probs_dropout_prob", default=0))]
    if not r.bool("qkv_bias", True):
        fields.append(("qkv_bias", False))
    fields += [("final_norm", True), ("layer_scale", num(r.float("layerscale_value", minimum=0)))]
    s.stacks.append(("encoder×L", fields))
    base = "Dinov2WithRegistersModel" if registers else "Dinov2Model"
    cls = "Dinov2WithRegistersForImageClassification" if registers else "Dinov2ForImageClassification"
    s.head = _head(r, "dinov2", {base: "none", cls: f"classifier({_classes(r)}, pool=cls_mean)"}, base)
    if registers or r.bool("use_mask_token", True):
        s.comment.insert(1, f"{base}'s mask_token ({d} parameters; masked-image pre-training only) is left out.")


def _dinov2_with_registers(r: Reader, s: Spec) -> None:
    _dinov2(r, s, registers=True)
