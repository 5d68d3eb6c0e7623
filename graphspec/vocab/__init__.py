"""The spec vocabulary: constructs a spec names (norm kinds, masks, positions, MLPs, block
placements, downsamplings, heads), one registry, one module per kind. See registry.py."""

from graphspec.ops import llm, moe  # noqa: F401  (registers the op kinds the LLM constructs lower to)
from graphspec.vocab import (  # noqa: F401  (registration: each module declares its constructs)
    attention,
    blocks,
    heads,
    mla,
    mlps,
    norms,
    positions,
    pyramid,
    stages,
    t5,
)
from graphspec.vocab.registry import (  # noqa: F401
    ALIASES,
    KINDS,
    REQUIRED,
    Arg,
    Construct,
    Use,
    alias,
    construct,
    get,
    read,
    use,
)
