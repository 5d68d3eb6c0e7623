"""`graphspec codegen --dtype fp16|bf16`: the generated file with its precision stated and applied.

The classes stay as they are (float32 by construction, as nn.Module's defaults); the file gains
a `DTYPE` and a `build()` that returns the root module with its parameters and buffers in it:

    DTYPE = torch.bfloat16

    def build(**kwargs) -> SwinT:
        return SwinT(**kwargs).to(DTYPE).eval()

NB: this is what Hugging Face's `torch_dtype=` and timm's `model.to(torch.bfloat16)` do;
PyTorch's layer_norm, softmax, GELU and matmul kernels keep their statistics and accumulators in
float32 inside (opmath), which graphspec's ONNX and TVM builds mirror (backends/tvm.py
[Half precision]). Inputs must be given in DTYPE too.
"""

from __future__ import annotations

TORCH_NAMES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
               "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def with_dtype(source: str, class_name: str, dtype: str) -> str:
    """`source` with DTYPE and build() appended (unchanged for float32)."""
    name = TORCH_NAMES[dtype]
    if name == "float32":
        return source
    return source.rstrip("\n") + f'''


DTYPE = torch.{name}  # weights, buffers and activations (graphspec codegen --dtype)


def build(**kwargs) -> {class_name}:
    """{class_name}(**kwargs) in DTYPE: LayerNorm, softmax and matmul still accumulate in float32
    inside PyTorch's kernels. Give inputs in DTYPE too."""
    return {class_name}(**kwargs).to(DTYPE).eval()
'''
