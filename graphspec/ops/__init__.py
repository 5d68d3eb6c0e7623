"""Op kinds, one family per module: dense (linear, conv2d, matmul, embedding), elementwise
(pointwise and norms), attention (heads, fused attention), windows (Swin's windows, cyclic
shift, relative position bias), llm and moe (RMSNorm, rotary, GQA, sliding masks, experts),
llama4 (chunked masks, L2 norm, attention temperature), modernbert (bidirectional local masks),
tensor (sources and token plumbing). Importing this package fills `REGISTRY`."""

from graphspec.ops import (  # noqa: F401  (registration)
    attention,
    conv,
    dense,
    elementwise,
    llama4,
    llm,
    modernbert,
    moe,
    t5,
    tensor,
    vision,
    windows,
)
from graphspec.ops.registry import (  # noqa: F401
    CONSTANT,
    ELEMENTWISE,
    HAS_PARAMS,
    IMPURE,
    MAC,
    NORM,
    REGISTRY,
    SHAPE_ONLY,
    SOFTMAX,
    SOURCE,
    OpDef,
    ShapeError,
    get,
    numel,
)
