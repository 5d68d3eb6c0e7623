"""The `backbone:` section: a CNN feature extractor in front of a transformer (DETR).

    backbone: resnet(layers=[3, 4, 6, 3])                        # torchvision ResNet-50
    backbone: {spec: resnet50.yaml, frozen_bn: true, frozen: 2}  # reuse another spec's backbone

`frozen_bn` makes every BatchNorm a FrozenBatchNorm2d (statistics and affine are buffers, DETR
models/backbone.py); `frozen: k` freezes the first k units (1: the stem conv1, 2: stem and
layer1), as DETR does with `train_backbone` and its layer filter. `dilation` is torchvision's
`replace_stride_with_dilation`, one flag per stage after the first: a flagged stage keeps its
resolution and dilates its 3×3 convolutions instead of striding (`dilation: true` is DETR's flag,
the last stage only: DETR-DC5, a stride-16 map).

    backbone: {spec: resnet50.yaml, frozen_bn: true, frozen: 2, dilation: [false, false, true]}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec.spec.errors import Diagnostics, SpecError
from graphspec.spec.reader import _BAD, _show

BACKBONES = {"resnet": ("layers", "width", "frozen_bn", "frozen", "dilation")}


@dataclass(frozen=True)
class BackboneSpec:
    kind: str  # resnet
    layers: tuple[int, ...] = (3, 4, 6, 3)
    width: int = 64
    frozen_bn: bool = False
    frozen: int = 0  # units frozen from the input: 1 = stem, 2 = stem + layer1, ...
    dilation: tuple[bool, ...] = ()  # per stage after the first: dilate instead of striding (empty: none)

    def dilated(self, stage: int) -> bool:
        """Whether stage `stage` (0-based) dilates instead of striding."""
        return stage > 0 and bool(self.dilation) and self.dilation[stage - 1]

    @property
    def channels(self) -> int:
        """Channels of the last stage's output (2048 for ResNet-50)."""
        return self.width * 2 ** (len(self.layers) - 1) * 4


def read_backbone(r: Any, v: Any) -> BackboneSpec | None:
    p = ("backbone",)
    if isinstance(v, dict) and "spec" in v:
        v = dict(v)
        ref = v.pop("spec")
        base = _referenced(r, ref)
        if base is None:
            return None
        kind, a = r.call(base, p, BACKBONES, "backbone")
        _, extra = r.call({"kind": kind, **v}, p, BACKBONES, "backbone")
        a.update(extra)
    else:
        kind, a = r.call(v, p, BACKBONES, "backbone")
    if not kind:
        return None
    layers = r.value(a.get("layers", [3, 4, 6, 3]), p)
    if not (isinstance(layers, list) and layers and all(isinstance(n, int) and n > 0 for n in layers)):
        r.diags.add(r.raw.loc(*p), f"resnet layers must be a list of positive ints, got {layers!r}",
                    "e.g. layers=[3, 4, 6, 3] for ResNet-50")
        layers = [1]
    if sum(layers) > 1024:  # every bottleneck is lowered: absurd depths would never finish
        r.diags.add(r.raw.loc(*p), f"resnet has {sum(layers)} blocks; graphspec allows at most 1024",
                    "e.g. layers=[3, 4, 6, 3] for ResNet-50")
        layers = [1]
    return BackboneSpec(kind, tuple(layers), dilation=_dilation(r, a.get("dilation", False), len(layers)),
                        width=r.typed(a.get("width", 64), p, int, "width", minimum=1),
                        frozen_bn=r.typed(a.get("frozen_bn", False), p, bool, "frozen_bn"),
                        frozen=r.typed(a.get("frozen", 0), p, int, "frozen", minimum=0))


def _dilation(r: Any, v: Any, n: int) -> tuple[bool, ...]:
    """`dilation: true` (DETR's flag: the last stage) or one bool per stage after the first."""
    p = ("backbone",)
    v = r.value(v, p)
    if v is False or v is _BAD:  # _BAD: reported where it went wrong
        return ()
    if v is True:
        return (False,) * (n - 2) + (True,) if n > 1 else ()
    if isinstance(v, list) and len(v) == n - 1 and all(isinstance(f, bool) for f in v):
        return tuple(v) if any(v) else ()
    example = ", ".join(["false"] * (n - 2) + ["true"]) if n > 1 else ""
    r.diags.add(r.raw.loc(*p), f"resnet dilation must be true, false or a list of {n - 1} bools (one per stage "
                f"after the first), got {_show(v)}", f"e.g. dilation=[{example}] (DETR-DC5: the last stage)")
    return ()


def _referenced(r: Any, ref: Any) -> Any:
    """The `backbone` value of the spec file `ref`, next to the current spec."""
    from graphspec.spec.loader import read_file
    from graphspec.spec.source import sibling

    loc = r.raw.loc("backbone")
    if not isinstance(ref, str):
        r.diags.add(loc, "`backbone.spec` must name a spec file", "write `spec: resnet50.yaml`")
        return None
    spec = Path(loc.file) if loc else Path("spec.yaml")
    try:  # inside the spec's folder, a regular file of at most 1 MiB, as for `extends:`
        tree = read_file(sibling(spec, ref, loc, "backbone.spec"), Diagnostics(), {}, at=loc)
    except SpecError as e:
        r.diags.extend(e)
        return None
    if "backbone" not in tree:
        r.diags.add(loc, f"{ref} declares no `backbone`", "reference a spec with a `backbone:` section")
        return None
    return tree["backbone"]
