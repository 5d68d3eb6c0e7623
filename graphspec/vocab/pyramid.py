"""Constructs of the pyramid vision transformers: PVT's spatial-reduction attention
(`attention: spatial_reduction(R)`), its patch embeddings between stages (`downsample:
patch_embed(kernel, stride)`), and CPVT/Twins' conditional positions (`pos: conditional`).
The IR they emit comes from graphspec/pyramid.py (module names of the official code)."""

from __future__ import annotations

from graphspec import pyramid
from graphspec.spec.errors import SpecError
from graphspec.vocab import norms
from graphspec.vocab.attention import attend
from graphspec.vocab.registry import Arg, construct
from graphspec.vocab.registry import use as make_use


def _plan_sr(use, at) -> dict:
    """R must tile the stage's map: the reduction conv reshapes the map, it does not pad."""
    if at.grid is None:
        raise SpecError.at(at.loc, "spatial_reduction attention needs a 2-D token map (an image)",
                           "use attention: global for token inputs")
    pyramid.check_reduction(at.loc, at.grid, use["R"], at.stage + 1)
    return {}


@construct("mask", "spatial_reduction", Arg("R", int, minimum=1, doc="reduction ratio of the key/value map, per side"),
           hooks={"plan": _plan_sr}, example="attention: spatial_reduction(8)", module="SpatialReduction",
           attr="sr", doc_class="Spatial reduction (PVT §3.3): the token map through a stride-R conv and a "
                                "norm, (B, h*w, C) -> (B, h*w/R², C).")
def spatial_reduction(b, use, layer, x, kv, local):
    """PVT's spatial-reduction attention (Wang et al. 2021, §3.3, Eq. 3-4): queries from every
    token, keys and values from the map reduced R× per side, SR(x) = Norm(Reshape(x, R)·W_S)
    (a stride-R conv and the stack's norm, `attn.sr`): QKᵀ and ·V cost 2·hw·(hw/R²)·C instead
    of 2(hw)²C. R = 1 is global attention (PVT's last stage)."""
    R, path = use["R"], b.child(local)

    def reduce(b, h):
        return pyramid.reduce_kv(b, h, layer.grid, R, layer.dim, lambda b, t: norms.apply(b, layer.norm, t, "norm"))

    y = attend(b, layer, x, kv, local, kv_fn=None if R == 1 else reduce)
    info = b.g.modules[path]  # `sr_ratio` marks it: fuse_qkv keeps q apart from k|v (the official `q`, `kv`)
    b.g.set_module(path, info.cls, **{**dict(info.a), "sr_ratio": R})
    return y


@construct("downsample", "patch_embed", Arg("kernel", int, 2, minimum=1, doc="conv kernel"),
           Arg("stride", int, None, minimum=1, doc="conv stride (default: the kernel)"),
           Arg("pos", str, "none", choices=("none", "learned"), doc="the next stage's own position table"),
           Arg("cls_token", bool, False, doc="PVT v1: the last stage's embedding prepends a class token"),
           example="downsample: patch_embed(2, stride=2, pos=learned)", module="StagePatchEmbed",
           attr="downsample", doc_class="Patch embedding between stages (PVT §3.1): the token map through a "
                                        "strided conv to the next width, normalized, with the stage's positions.")
def patch_embed(b, use, at, x):
    """PVT §3.1 between stages: the token map as an image, a kernel-k stride-s conv to the next
    stage's width, the stack's norm and, with `pos=learned`, the next stage's position table
    (PVT v1 keeps one per stage); `cls_token` prepends the class token before the last stage."""
    stride = use["stride"] or use["kernel"]
    last = at.stage == at.stages - 2
    nxt = at.next_dim if at.next_dim is not None else 2 * at.dim
    norm = at.norm or make_use("norm", "layer_norm", eps=at.eps)
    return (*pyramid.patch_embed(b, x, at.grid, use["kernel"], stride, at.dim, nxt,
                                 lambda b, t: norms.apply(b, norm, t, "norm"), pos=use["pos"],
                                 cls_token=use["cls_token"] and last), nxt)


def _peg(b, use, at, x):
    if at.grid is None:
        raise SpecError.at(b.loc, "conditional positions need a 2-D token map (an image)",
                           "use pos=learned or sinusoidal for token inputs")
    H, W = at.grid
    N = b.shape(x)[1]
    if isinstance(N, int) and isinstance(H * W, int) and N != H * W:
        raise SpecError.at(b.loc, f"conditional positions convolve the {H}×{W} token map, but the stage has {N} "
                           "tokens (a class token?)", "drop cls_token, or pool with head: classifier(pool=mean)")
    return pyramid.peg(b, x, at.grid, at.dim)


@construct("pos", "conditional", hooks={"after_first_block": _peg}, example="pos: conditional",
           module="PosConv", attr="pos_block",
           doc_class="Position encoding generator (CPVT §3.2): x + DWConv3×3(x) on the token map.")
def conditional(b, use, ctx, x):
    """CPVT's position encoding generator (Chu et al. 2021, arXiv:2102.10882, §3.2) as Twins
    places it (arXiv:2104.13840, §2.1): after the first block of every stage, x + DWConv3×3(x)
    over the h×w token map (`layers.{i}.pos_block.proj`); nothing is added at the embedding."""
    return x
