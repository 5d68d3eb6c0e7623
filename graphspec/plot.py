"""Pictures of a model (`graphspec plot`): the data as plain functions, drawing apart.

- `macs_series`: MACs versus input size from the symbolic polynomial (graphspec.analysis):
  image side H for images (W = H), sequence length N for tokens (and T = N for a decoder).
  ViT-B/16 against Swin-T from 224² to 1024²: quartic in H (quadratic in tokens) against
  quadratic in H (linear in tokens).
- `breakdown`: parameters and MACs per top-level module (stage) or per op kind.
- `graph_dot`: the IR as Graphviz DOT, one nested cluster per module; after the default
  passes a fused attention is one node.

Drawing uses matplotlib (the `plot` extra) with the Agg backend; it is imported only when a
picture is drawn, so the data functions need nothing beyond graphspec.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import sympy

from graphspec import analysis
from graphspec.analysis import Convention
from graphspec.ir import Graph, fmt_type
from graphspec.lower import SYMBOLS
from graphspec.ops import numel

B, N, T, H, W = (SYMBOLS[k] for k in ("B", "N", "T", "H", "W"))
MACS = Convention()


@dataclass(frozen=True)
class Series:
    label: str
    axis: str  # "image side H" or "sequence length N"
    polynomial: sympy.Expr  # MACs at batch 1
    sizes: tuple[int, ...]
    values: tuple  # ints (floats where the polynomial is fractional at a size)


def size_symbols(macs) -> tuple[str, dict]:
    """The axis a polynomial is plotted along and what a size s substitutes."""
    free = sympy.sympify(macs).free_symbols
    if free & {H, W}:
        return "image side H (pixels)", {H: "s", W: "s"}
    if free & {N, T}:
        return "sequence length N (tokens)", {N: "s", T: "s"}
    return "input size", {}


def macs_series(label: str, macs, sizes, batch: int = 1) -> Series:
    """The symbolic MAC count `macs` (in B and H or N) evaluated at every size, batch `batch`."""
    poly = sympy.expand(sympy.sympify(macs).subs(B, batch))
    axis, subs = size_symbols(poly)
    values = []
    for s in sizes:
        v = poly.subs({k: s for k in subs})
        values.append(int(v) if v.is_Integer else float(v))  # a size the model does not tile: the polynomial's value
    return Series(label, axis, poly, tuple(sizes), tuple(values))


def parse_sizes(text: str) -> tuple[int, ...]:
    """`224:1024:32` (start:stop:step, stop included), `224,384,512`, or one size. ValueError on bad input."""
    text = text.strip()
    shown = text if len(text) <= 40 else text[:40] + "..."
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(p.strip().isascii() and p.strip().isdigit() and len(p.strip()) < 19
                                               for p in parts):
            raise ValueError(f"sizes {shown!r}: write start:stop[:step] with positive integers (at most 18 digits), e.g. 224:1024:32")
        start, stop, step = (int(p) for p in parts) if len(parts) == 3 else (int(parts[0]), int(parts[1]), 1)
        if step <= 0 or start <= 0 or stop < start:
            raise ValueError(f"sizes {shown!r}: need 0 < start <= stop and step > 0, e.g. 224:1024:32")
        points = range(start, stop + 1, step)
        if (stop - start) // step + 1 > 10_000:  # before the tuple: 1:1000000000 would hold a billion ints
            raise ValueError(f"sizes {shown!r}: {(stop - start) // step + 1:,} points; at most 10,000")
        sizes = tuple(points)
    else:
        parts = [p.strip() for p in text.split(",")]
        if not parts or not all(p.isascii() and p.isdigit() and len(p) < 19 and int(p) > 0 for p in parts):
            raise ValueError(f"sizes {shown!r}: write positive integers (at most 18 digits), e.g. 224,384 or 224:1024:32")
        sizes = tuple(int(p) for p in parts)
    if len(sizes) > 10_000:
        raise ValueError(f"sizes {shown!r}: {len(sizes)} points; at most 10,000")
    return sizes


@dataclass(frozen=True)
class Breakdown:
    by: str  # "stage" or "op"
    labels: tuple[str, ...]
    params: tuple[int, ...]
    macs: tuple[int, ...]


def breakdown(g: Graph, by: str = "stage", conv: Convention = MACS) -> Breakdown:
    """Parameters and MACs per top-level module (`layers.0`, `patch_embed`, `head`) or per op kind.
    Rows with neither are left out; the totals equal analysis.param_count and analysis.macs."""
    rows: dict[str, list] = {}
    if by == "stage":
        for path, v in analysis.by_module(g, conv, depth=1).items():
            rows[path or "(root)"] = [v["params"], v["macs"]]
    elif by == "op":
        seen: set[str] = set()
        for n in g:
            r = rows.setdefault(n.op, [0, 0])
            r[1] += analysis.node_cost(g, n, conv)
            for k, shape in analysis.node_params(g, n).items():
                if k not in seen:
                    seen.add(k)
                    r[0] += numel(shape)
    else:
        raise ValueError(f"breakdown by {by!r}: use stage or op")
    keep = [(k, int(p), int(m)) for k, (p, m) in rows.items() if p or m]
    return Breakdown(by, tuple(k for k, _, _ in keep), tuple(p for _, p, _ in keep), tuple(m for _, _, m in keep))


# -- the IR as DOT ---------------------------------------------------------------------------------
def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(g: Graph) -> str:
    """Graphviz DOT of `g`: one nested cluster per module (labelled path and class), a node per
    IR node (its local name, op and type), an edge per operand."""
    tree: dict[str, list[str]] = {}  # module path -> child module paths
    members: dict[str, list] = {}
    paths = set(g.modules) | {n.module for n in g}
    for p in sorted(paths):
        parts = p.split(".") if p else []
        parent = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in paths), "")
        if p:
            tree.setdefault(parent, []).append(p)
    for n in g:
        members.setdefault(n.module, []).append(n)
    out = [f"digraph {_q(g.name)} {{", "  rankdir=TB; compound=true;",
           '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=monospace, fontsize=9];']

    def emit(path: str, indent: str) -> None:
        for n in members.get(path, []):
            local = n.name[len(path) + 1:] if path and n.name.startswith(path + ".") else n.name
            fill = ', fillcolor="#ffe0b0"' if n.op == "attention" else ""
            label = _q(local)[:-1] + "\\n" + _q(f"{n.op} {fmt_type(n)}")[1:]  # two lines
            out.append(f"{indent}{_q(n.name)} [label={label}{fill}];")
        for child in tree.get(path, []):
            info = g.modules.get(child)
            label = f"{child} ({info.cls})" if info else child
            out.append(f"{indent}subgraph {_q('cluster_' + child)} {{")
            out.append(f"{indent}  label={_q(label)}; style=rounded; color=gray50; fontname=monospace; fontsize=10;")
            emit(child, indent + "  ")
            out.append(f"{indent}}}")

    emit("", "  ")
    for n in g:
        for i in dict.fromkeys(n.inputs):
            out.append(f"  {_q(i)} -> {_q(n.name)};")
    out.append("}")
    return "\n".join(out) + "\n"


# -- drawing -----------------------------------------------------------------------------------------
def _pyplot():
    """matplotlib.pyplot on the Agg backend; ImportError when matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, fmt: str) -> bytes:
    buf = io.BytesIO()
    meta = {"Date": None} if fmt == "svg" else {}  # an SVG without a timestamp: same input, same bytes
    fig.savefig(buf, format=fmt, bbox_inches="tight", metadata=meta)
    _pyplot().close(fig)
    return buf.getvalue()


def draw_macs(series: list[Series], fmt: str, title: str = "", log: bool = False) -> bytes:
    """MACs (G) versus input size, one line per spec; `log`: log-log axes (slopes are degrees)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in series:
        ax.plot(s.sizes, [v / 1e9 for v in s.values], marker="o" if len(s.sizes) <= 40 else None,
                markersize=3, label=f"{s.label}")
    ax.set_xlabel(series[0].axis)
    ax.set_ylabel("GMACs (batch 1)")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title or "MACs versus input size (symbolic polynomials)")
    return _save(fig, fmt)


def draw_breakdown(b: Breakdown, fmt: str, title: str = "") -> bytes:
    """Two bar charts side by side: parameters (M) and MACs (G) per stage or op kind."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 0.45 * len(b.labels) + 4), 4.5))
    xs = range(len(b.labels))
    for ax, vals, scale, name in ((ax1, b.params, 1e6, "parameters (M)"), (ax2, b.macs, 1e9, "GMACs")):
        ax.bar(xs, [v / scale for v in vals], color="#4c72b0" if ax is ax1 else "#dd8452")
        ax.set_xticks(list(xs), b.labels, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel(name)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title or f"parameters and MACs per {b.by}")
    return _save(fig, fmt)
