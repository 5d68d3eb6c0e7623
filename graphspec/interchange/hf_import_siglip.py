"""The importer of SigLIP's vision tower (Zhai et al. 2023, arXiv:2303.15343), in the layout of
specs/siglip_so400m.yaml: `model_type: siglip_vision_model` (SiglipVisionModel; PaliGemma's and
Gemma 3's `vision_config`), and a whole `siglip` config (SiglipModel), of which the vision tower
is imported and the spec's header says the text tower was left out.

    image_size, patch_size, num_channels -> image(img_size), patches(patch, crop=true when the
                                            patches do not tile the image: So400m/14 at 384)
    hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act,
    layer_norm_eps, attention_dropout   -> the encoder (pre-LN, final norm = post_layernorm)
    vision_use_head                     -> head: map (multihead attention pooling) or none

An `image_size` or `patch_size` given as a (height, width) pair (which SiglipVisionModel itself
cannot build) is refused as not an integer.
"""

from __future__ import annotations

import re

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _head
from graphspec.spec.errors import SpecError

ARCHS = {"SiglipVisionModel": "map"}  # the head (`none` with vision_use_head false)


def _vision(r: Reader, s: Spec, heads: dict[str, str]) -> None:
    img, patch = r.int("image_size"), r.int("patch_size")
    s.var("img_size", img), s.var("patch", patch), s.var("D", r.int("hidden_size"))
    s.var("L", r.int("num_hidden_layers")), s.var("h", r.int("num_attention_heads"))
    s.var("d_ff", r.int("intermediate_size")), s.var("batch", 1)
    channels = r.int("num_channels")
    s.input = "image(img_size)" if channels == 3 else f"image(img_size, channels={channels})"
    crop = ", crop=true" if img % patch else ""  # HF's conv is padding="valid": 384 // 14 = 27 patches
    s.embed = f"patches(patch, dim=D, pos=learned{crop})"
    s.stacks.append(("encoder×L", [("dim", "D"), ("heads", "h"), ("d_ff", "d_ff"), ("norm", "pre"),
                                   ("act", _act(r, "hidden_act")), ("eps", r.float("layer_norm_eps")),
                                   ("attn_dropout", r.float("attention_dropout", default=0)), ("final_norm", True)]))
    head = _head(r, "siglip_vision_model", heads, next(iter(heads)))
    s.head = head if r.bool("vision_use_head", True) else "none"


def _siglip_vision(r: Reader, s: Spec) -> None:
    _vision(r, s, ARCHS)


def _siglip(r: Reader, s: Spec) -> None:
    """A whole SigLIP config: its `vision_config` (the text tower, `text_config`, is left out)."""
    from graphspec.interchange.defaults import DEFAULTS

    r.raw("text_config")
    sub = r.raw("vision_config")
    if not isinstance(sub, dict):
        r.error("vision_config", f"vision_config must be an object, not {show(sub)}")
        return
    r.expect("architectures", (None, [], ["SiglipModel"]), "graphspec imports SiglipModel's vision tower")
    text = r.text
    if text:  # locate the sub-config's keys inside `"vision_config": {...}`: blank what comes before it
        m = re.search(r'"vision_config"\s*:', text)
        text = re.sub(r"[^\n]", " ", text[:m.start()]) + text[m.start():] if m else text
    v = Reader(sub, DEFAULTS["siglip_vision_model"], r.file, text, {"model_type"})
    _vision(v, s, {"SiglipVisionModel": "map"})
    s.comment.insert(1, "Of SiglipModel, the vision tower (SiglipVisionModel): the text tower and the logit scale "
                        "and bias are left out.")
    try:
        v.finish("siglip vision_config")
    except SpecError:
        pass  # its diagnostics are v's: reported with the top level's
    r.diags.items += [d for d in v.diags.items if d not in r.diags.items]
