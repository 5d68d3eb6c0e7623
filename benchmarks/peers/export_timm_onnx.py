"""Export timm's Swin-T and ViT-B/16 (random weights) with torch.onnx.export: the peer graphs
that bench_backends.py runs through onnxruntime beside graphspec's own ONNX.

timm needs torchvision, which does not import beside the CPU torch 2.13.0 that graphspec's venv
uses here, so this runs in a venv of its own (nothing of it is imported by graphspec):

    python3 -m venv /tmp/peers && . /tmp/peers/bin/activate
    pip install torch==2.14.1 torchvision==0.29.1 timm onnx onnxscript
    python benchmarks/peers/export_timm_onnx.py -o /tmp/timm-onnx      # then:
    python benchmarks/bench_backends.py --timm-onnx /tmp/timm-onnx     # in graphspec's venv

Legacy TorchScript exporter (dynamo=False), opset 17, static batch; what users of timm get from
the documented `torch.onnx.export(model, x, ...)` call. Writes <model>-b<batch>.onnx and a JSON
with the versions and node counts.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

MODELS = {"swin_t": "swin_tiny_patch4_window7_224", "vit_b16": "vit_base_patch16_224"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()

    import onnx
    import timm
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    info = {"torch": torch.__version__, "timm": timm.__version__, "onnx": onnx.__version__,
            "opset": args.opset, "exporter": "torch.onnx.export(dynamo=False)", "models": {}}
    for key, name in MODELS.items():
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        for b in args.batch:
            x = torch.randn(b, 3, 224, 224)
            path = args.out / f"{key}-b{b}.onnx"
            with torch.no_grad():
                torch.onnx.export(model, (x,), str(path), opset_version=args.opset, dynamo=False,
                                  input_names=["image"], output_names=["logits"])
            m = onnx.load(str(path))
            ops = collections.Counter(n.op_type for n in m.graph.node)
            info["models"][f"{key}-b{b}"] = {"timm_model": name, "nodes": len(m.graph.node),
                                             "params": sum(p.numel() for p in model.parameters()),
                                             "top_ops": dict(ops.most_common(8))}
            print(path, len(m.graph.node), dict(ops.most_common(6)), flush=True)
    (args.out / "timm_onnx.json").write_text(json.dumps(info, indent=1) + "\n")


if __name__ == "__main__":
    main()
