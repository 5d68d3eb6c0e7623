"""What a pass returns, and the errors passes raise.

A pass is a function `Graph -> PassResult` (a bare `Graph` is accepted too) that never mutates
its input. The result carries the new graph and what the manager reports and verifies: how many
sites matched and were rewritten, which declined and why, and the pass's declarations about
parameters (renamed, added, removed), without which the verifier refuses any change to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphspec.ir import Graph


class PassError(ValueError):
    """A pass refuses its input (a user error: e.g. a window that does not divide the map)."""


@dataclass
class PassResult:
    graph: Graph
    matched: int = 0  # sites where the pattern matched
    applied: int = 0  # of those, rewritten
    declined: list[tuple[str, str]] = field(default_factory=list)  # (node, reason)
    renames: dict[str, tuple[str, ...]] = field(default_factory=dict)  # new param <- old params
    added: list[str] = field(default_factory=list)  # new parameters
    removed: list[str] = field(default_factory=list)  # parameters dropped with dead nodes
    notes: list[str] = field(default_factory=list)
