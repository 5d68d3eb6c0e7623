"""Passes over the IR: small functions Graph -> Graph that never mutate their input.

Fusions are `(pattern, rewrite)` rows written with the one matcher of `pattern.py`; the manager
(`manager.py`) runs named pipelines and verifies the graph after every pass.

    from graphspec.passes import run_pipeline
    graph, report = run_pipeline(graph, "default")          # fuse_attention, fuse_qkv, cse, dce
    graph, report = run_pipeline(graph, "partition_windows(M=7, shift=true),fuse_attention")
"""

from graphspec.passes import (  # noqa: F401  (registration)
    cse,
    dce,
    fold_constants,
    fuse_attention,
    fuse_qkv,
    partition_windows,
)
from graphspec.passes.base import PassError, PassResult  # noqa: F401
from graphspec.passes.manager import (  # noqa: F401
    PASSES,
    PIPELINES,
    PipelineError,
    Report,
    parse_pipeline,
    register,
    run_pipeline,
)
