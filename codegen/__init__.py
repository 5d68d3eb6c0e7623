"""graphspec.codegen: the IR as one readable, standalone PyTorch file, and as torch.fx.

    from graphspec.codegen import generate
    source = generate(graph, spec)          # str, deterministic to the byte
    graphspec.load("swin_t").to_torch()     # the generated module, instantiated

See codegen/source.py (file layout), codegen/emit.py (classes), codegen/body.py (forward
passes) and codegen/fx.py (torch.fx in both directions).
"""

from graphspec.codegen.program import CodegenError  # noqa: F401
from graphspec.codegen.source import Generated, emit, generate, load  # noqa: F401
