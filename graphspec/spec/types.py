"""The typed sections of a validated spec (`ModelSpec` with input, embed, stacks and head) and
the keys each section accepts. graphspec.spec.schema validates a raw spec into them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from graphspec.spec.errors import Loc
from graphspec.spec.loader import RawSpec

IDENT = re.compile(r"^[A-Za-z_]\w*$")

TOP_KEYS = {"name", "paper", "repo", "description", "vars", "input", "backbone", "embed", "encoder",
            "decoder", "head", "expect", "dtype", "names"}
STACK_KEYS = {"layers", "dim", "heads", "d_ff", "mlp_ratio", "attention", "norm", "act", "bias",
              "qkv_bias", "dropout", "attn_dropout", "drop_path", "eps", "final_norm", "cross",
              "depths", "downsample", "pos", "queries", "aux",
              "mlp", "placement", "block", "kv_heads", "head_dim", "out_bias", "mlp_bias", "qk_norm", "softcap",
              "scale", "qkv", "sinks", "layer_scale"}
MAX_BLOCKS = 4096  # per stack: every block is lowered, so absurd depths would never finish
EXPECT_KEYS = {"params", "trainable_params", "active_params", "macs", "macs_norms", "macs_unmasked",
               "macs_swin_paper", "official_flops", "published"}


@dataclass(frozen=True)
class Attn:
    """The first block's mask, summarised (the masks themselves: `StackSpec.masks`)."""

    kind: str = "global"  # global | causal | sliding | windowed
    window: int | None = None
    shift: bool = False  # shifted windows in every other block (SW-MSA)


@dataclass(frozen=True)
class InputSpec:
    kind: str  # tokens | image
    batch: Any = 1
    seq_len: Any = None
    tgt_len: Any = None
    img_size: Any = None
    channels: int = 3
    height: Any = None  # non-square images (DETR); img_size otherwise
    width: Any = None

    @property
    def hw(self) -> tuple:
        return (self.height or self.img_size, self.width or self.img_size)


@dataclass(frozen=True)
class EmbedSpec:
    kind: str  # tokens | patches | project (1×1 conv of a backbone's map)
    dim: int
    vocab: int | None = None
    patch: int | None = None
    pos: str = "none"  # the position scheme's name: none | sinusoidal | learned | sine2d | rope | alibi
    max_len: int | None = None
    types: int = 0
    norm: bool = False
    scale: bool = False
    cls_token: bool = False
    proj: int | None = None  # tokens: a Linear dim -> proj after the embedding (ELECTRA's embeddings_project)
    dist_token: bool = False  # patches: DeiT's distillation token after [class], with a position of its own
    registers: int = 0  # patches: learned tokens after [class], outside the positions (Darcet et al. 2024)
    crop: bool = False  # patches: drop the pixels past the last whole patch (a "valid" conv; SigLIP /14 at 384)
    dropout: float = 0.0
    eps: float = 1e-5
    pos_use: Any = None  # the position construct (graphspec.vocab.Use); `pos` is its name
    norm_use: Any = None  # `norm=layer_norm(1e-5, bias=false)`: the norm construct (None: LayerNorm(eps))


@dataclass(frozen=True)
class StackSpec:
    role: str  # encoder | decoder
    dim: int
    heads: tuple[int, ...]  # one per stage
    depths: tuple[int, ...]  # blocks per stage; one stage unless `depths:` is given
    d_ff: Any  # int, or None when mlp_ratio is used
    mlp_ratio: float
    attention: Attn
    norm: str = "pre"
    act: str = "gelu"
    bias: bool = True
    qkv_bias: bool = True
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    eps: float = 1e-5
    final_norm: bool = False
    cross: bool = False
    downsample: str = "none"  # none | patch_merging
    pos_every_layer: bool = False  # DETR: positions added to queries and keys in every layer
    queries: int | None = None  # DETR: learned object queries feed the decoder
    aux: bool = False  # DETR: every decoder layer's output goes through the (shared) heads
    loc: Loc | None = None
    # the open vocabulary (graphspec/vocab): None / () mean today's defaults
    kv_heads: int | None = None  # GQA / MQA: k/v heads (None: = heads)
    head_dim: int | None = None  # None: dim / heads
    out_bias: bool = True
    mlp_bias: bool = True
    qk_norm: str | bool = False  # "head": the norm over each head's q and k; "all": over all heads' at once
    softcap: float | None = None  # tanh soft-capping of the attention logits
    sinks: bool = False  # attention sinks: one learned logit per head in the softmax (gpt-oss)
    norm_kind: Any = None  # Use of kind `norm` (None: layer_norm(eps))
    mlp: Any = None  # Use of kind `mlp` (None: mlp(d_ff, act, ratio=mlp_ratio))
    masks: tuple = ()  # Uses of kind `mask`: one for all blocks, or one per block
    block: tuple | None = None  # free composition (graphspec/vocab/blocks.py); None: from `norm`
    names: str = "graphspec"  # graphspec | hf (Hugging Face's decoder-layer names)
    dims: tuple = ()  # per-stage widths (`dim: [64, 128, 320, 512]`); (): dim, doubled by patch merging
    mlps: tuple = ()  # per-stage MLPs (`mlp_ratio: [8, 8, 4, 4]`); (): `mlp` for every stage
    down_use: Any = None  # the downsampling construct with its arguments (Use of kind `downsample`)
    scale: float | None = None  # attention logit scale (None: 1/√head_dim; T5: 1)
    qkv: Any = None  # Use of kind `qkv` (`mla(...)`: DeepSeek's latent attention); None: three linears
    layer_scale: float | None = None  # LayerScale's initial γ on every residual branch (CaiT, DINOv2); None: none
    layer_mlps: tuple = ()  # one MLP Use per block (`mlp: first(1, glu(...), moe(...))` or a list); (): `mlp`

    def layer_masks(self) -> list:
        """One mask Use per block: `masks` repeated where one serves them all."""
        return list(self.masks) * sum(self.depths) if len(self.masks) == 1 else list(self.masks)


@dataclass(frozen=True)
class HeadSpec:
    kind: str  # lm | classifier | pooler | detection | none
    classes: int | None = None
    box_layers: int = 3
    decoder: str = "naive"  # segmentation (SETR §3.3): naive | pup | mla
    channels: int = 256
    pool: str = "cls"
    tied: bool = True
    bias: bool = False
    softcap: float | None = None  # lm: tanh soft-capping of the final logits (Gemma 2)
    use: Any = field(default=None, repr=False)  # the head construct (graphspec/vocab/heads.py)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input: InputSpec
    embed: EmbedSpec
    stacks: tuple[StackSpec, ...]
    head: HeadSpec
    backbone: Any = None  # spec.backbone.BackboneSpec
    vars: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    repo: str = ""
    raw: RawSpec | None = field(default=None, compare=False, repr=False)

    def loc(self, *path: Any) -> Loc | None:
        return self.raw.loc(*path) if self.raw else None
