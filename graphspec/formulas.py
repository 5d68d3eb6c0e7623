"""The papers' attention formulas, checked against the IR (`graphspec flops --formulas`).

Every attention sub-layer of a model (an IR module holding QKᵀ and ·V, unfused or one fused
`attention` node) is a `Site`: its width C, heads, window M, reduction ratio R, mask, and the
tokens per sample it attends over, all read from the IR's module attributes and the shapes of
its projections' inputs. The first row of `FORMULAS` that applies to it gives the paper's
expression; bound to the site's dims and times the batch, it must equal the IR's MAC count of
that module (graphspec/analysis.py) as a sympy identity — in B and H or N when the model is
lowered symbolically, or as integers. Formulas are data: edit the table, not the checker.

All formulas count MACs as the papers do (docs/conventions.md): projections and the two
attention matmuls. NB: softmax, the scale, masks and position biases are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy

from graphspec import analysis
from graphspec.analysis import Convention
from graphspec.ir import Graph
from graphspec.ops import numel

# The papers' symbols. NB: plain positive symbols, so they never equal the lowering's
# (positive, integer) B, N, H of graphspec.lower.SYMBOLS, whatever their names.
h, w, C, M, R, S, W, K = sympy.symbols("h w C M R S W K", positive=True)  # K: Llama 4's chunk
Lw = sympy.Symbol("L", positive=True, integer=True)  # ModernBERT's local window (local_attention)
hd, gd = sympy.symbols("hd gd", positive=True)  # query width heads·d, key/value width kv_heads·d
MACS = Convention()
hw = h * w  # tokens per sample: the map h×w, or N tokens (then h = N, w = 1)
# MLA (DeepSeek-V2 §2.1): latent width d_c, rope / nope / value dims per head, and Qp, the query
# projection's MACs per token: C·h(d_n + d_r), or C·d_c' + d_c'·h(d_n + d_r) with a query latent
dc, dr, dn, dv, Qp, nh = sympy.symbols("d_c d_r d_n d_v Q_p n_h", positive=True)


def sliding_pairs(n, window):
    """(query, key) pairs a causal sliding window W keeps over n tokens (Mistral 7B §2):
    Σᵢ min(i+1, W) = n(n+1)/2 while n ≤ W, else W(W+1)/2 + (n−W)·W.

    NB: the same closed form as graphspec/ops/llm.py `kept_pairs`, written again on purpose: this
    is the paper's side of the identity check, and calling the op's own count would make it
    compare the IR with itself."""
    n, window, half = sympy.sympify(n), sympy.sympify(window), sympy.Rational(1, 2)
    return sympy.Piecewise((n * (n + 1) * half, sympy.Le(n, window)),
                           (window * (window + 1) * half + (n - window) * window, True))


def chunk_pairs(n, chunk):
    """(query, key) pairs a chunked causal mask of K keeps over n tokens (Llama 4's local layers):
    K(K+1)/2 per whole chunk and r(r+1)/2 for the last r = n − K⌊n/K⌋ tokens.

    NB: written again beside graphspec/ops/llama4.py's `chunked_keep_count` on purpose, as
    `sliding_pairs` is: the formula's side of the identity check."""
    n, K = sympy.sympify(n), sympy.sympify(chunk)
    whole = sympy.floor(n / K)
    r = n - K * whole
    return whole * K * (K + 1) / 2 + r * (r + 1) / 2


def local_pairs(n, window):
    """(query, key) pairs a bidirectional local window L keeps over n tokens (ModernBERT's local
    layers: |i − j| ≤ w = ⌊L/2⌋): every query's 2w + 1 keys, less the w(w+1) the two ends clip,
    n(2w+1) − w(w+1) while n > w; n² when the window covers the sequence.

    NB: written again beside graphspec/ops/modernbert.py's `local_keep_count` on purpose, as
    `sliding_pairs` is: the formula's side of the identity check."""
    n, half = sympy.sympify(n), sympy.floor(sympy.sympify(window) / 2)
    return sympy.Piecewise((n**2, sympy.Le(n, half + 1)), (n * (2 * half + 1) - half * (half + 1), True))


@dataclass(frozen=True)
class Site:
    """One attention sub-layer as the IR has it; dims per sample, MACs for the whole batch."""

    path: str
    group: str  # the stage or stack it belongs to ('' = the model)
    cross: bool
    dim: Any
    heads: Any
    kv_heads: Any
    head_dim: Any
    tokens: Any  # queries per sample
    keys: Any  # keys per sample the k projection reads (cross-attention: the memory; PVT: hw/R²)
    grid: tuple | None  # the block's h×w map, when it has one
    window: Any = None
    sr_ratio: Any = 1
    causal: bool = False
    sliding: Any = None
    macs: Any = 0
    mla: dict | None = None  # `qkv: mla(...)`'s dims (kv_rank, rope_dim, nope_dim, v_dim, q_rank)
    chunk: Any = None  # Llama 4's chunked causal mask: tokens per chunk
    local: Any = None  # ModernBERT's bidirectional local window: its width L

    def bindings(self) -> dict:
        """The formula's symbols -> this site's values."""
        grid = self.grid if self.grid and _zero(self.grid[0] * self.grid[1] - self.tokens) else (self.tokens, 1)
        out = {h: grid[0], w: grid[1], C: self.dim, M: self.window or 0, R: self.sr_ratio, S: self.keys,
               W: self.sliding or 0, K: self.chunk or 0, Lw: self.local or 0, hd: self.heads * self.head_dim,
               gd: self.kv_heads * self.head_dim}
        if self.mla:
            a, qk = self.mla, self.heads * (self.mla["nope_dim"] + self.mla["rope_dim"])
            q = a.get("q_rank")
            out.update({dc: a["kv_rank"], dr: a["rope_dim"], dn: a["nope_dim"], dv: a["v_dim"], nh: self.heads,
                        Qp: self.dim * qk if q is None else self.dim * q + q * qk})
        return out

    @property
    def standard(self) -> bool:
        """heads·d = C and one k/v head per query head: the papers' multi-head attention."""
        return self.kv_heads == self.heads and _zero(self.heads * self.head_dim - self.dim)


@dataclass(frozen=True)
class Formula:
    """A paper's cost of one attention sub-layer per sample, in MACs."""

    name: str  # Ω(W-MSA)
    text: str  # the paper's notation
    citation: str
    expr: Callable[[], sympy.Expr]  # over the symbols above
    applies: Callable[[Site, Convention], bool]
    uses: tuple = ()  # the symbols shown in the "with" line
    note: str = ""
    masked_note: str = ""  # shown when the sub-layer has a causal, sliding or local mask


SWIN = "Liu et al. 2021, Swin Transformer, arXiv:2103.14030, §3.2"
GQA = "Ainslie et al. 2023, GQA, arXiv:2305.13245, §2.2 (k/v projections kv_heads·d wide)"

FORMULAS: list[Formula] = [
    Formula("Ω(W-MSA)", "4hwC² + 2M²hwC", f"{SWIN}, Eq. (2)",
            lambda: 4 * hw * C**2 + 2 * M**2 * hw * C,
            lambda s, c: s.window is not None and not s.cross and s.standard, (h, w, C, M),
            "SW-MSA costs the same: the shift and its mask are not counted"),
    Formula("Ω(SRA)", "2hwC² + 2hwC²/R² + 2(hw)²C/R² + hwC²",
            "Wang et al. 2021, PVT, arXiv:2102.12122, §3.3 (SR(x) = Norm(Reshape(x, R)·W_S); derived): q and the output projection "
            "over hw tokens, k and v over hw/R², QKᵀ and ·V over hw × hw/R² pairs, and SR's stride-R "
            "conv (hw/R² positions × C × C·R²)",
            lambda: 2 * hw * C**2 + 2 * hw * C**2 / R**2 + 2 * hw**2 * C / R**2 + hw * C**2,
            lambda s, c: s.sr_ratio != 1 and not s.cross and s.standard, (h, w, C, R),
            "R = 1 (no reduction) is Ω(MSA)"),
    Formula("Ω(cross)", "2NC² + 2SC² + 2NSC",
            "Vaswani et al. 2017, arXiv:1706.03762, §3.2.3 (encoder-decoder attention: N queries, S keys)",
            lambda: 2 * hw * C**2 + 2 * S * C**2 + 2 * hw * S * C,
            lambda s, c: s.cross and s.standard, (h, w, S, C)),
    Formula("Ω(MLA)", "N·(Q_p + C(d_c + d_r) + d_c·n_h(d_n + d_v) + n_h·d_v·C) + N²·n_h(d_n + d_r + d_v)",
            "DeepSeek-AI 2024, DeepSeek-V2, arXiv:2405.04434, §2.1, Eq. 9-19 (multi-head latent attention: "
            "k, v up-projected from a d_c latent, a decoupled d_r RoPE key shared by the heads)",
            lambda: hw * (Qp + C * (dc + dr) + dc * nh * (dn + dv) + nh * dv * C) + hw**2 * nh * (dn + dr + dv),
            lambda s, c: s.mla is not None and not (c.unmasked and s.causal), (h, C, nh, dc, dr, dn, dv),
            "", "a causal mask is counted dense (`--convention unmasked` counts the kept pairs)"),
    Formula("Ω(MLA, causal)", "N·(Q_p + C(d_c + d_r) + d_c·n_h(d_n + d_v) + n_h·d_v·C) + N(N+1)/2·n_h(d_n + d_r + d_v)",
            "DeepSeek-AI 2024, DeepSeek-V2, arXiv:2405.04434, §2.1 (`unmasked`: the kept pairs of the causal mask)",
            lambda: hw * (Qp + C * (dc + dr) + dc * nh * (dn + dv) + nh * dv * C)
            + hw * (hw + 1) / 2 * nh * (dn + dr + dv),
            lambda s, c: s.mla is not None and c.unmasked and s.causal, (h, C, nh, dc, dr, dn, dv)),
    Formula("Ω(SWA)", "2N·C·(hd + gd) + 2hd·Σᵢ min(i+1, W)",
            f"Jiang et al. 2023, Mistral 7B, arXiv:2310.06825, §2 (sliding window W, `unmasked`); {GQA}",
            lambda: 2 * hw * C * (hd + gd) + 2 * hd * sliding_pairs(hw, W),
            lambda s, c: c.unmasked and bool(s.sliding) and not s.cross, (h, w, C, hd, gd, W)),
    Formula("Ω(chunked)", "2N·C·(hd + gd) + 2hd·(⌊N/K⌋·K(K+1)/2 + r(r+1)/2), r = N − K⌊N/K⌋",
            f"Meta 2025, The Llama 4 herd; HF modeling_llama4 (chunked_attention: keys of the query's own chunk "
            f"of K, `unmasked`); {GQA}",
            lambda: 2 * hw * C * (hd + gd) + 2 * hd * chunk_pairs(hw, K),
            lambda s, c: c.unmasked and bool(s.chunk) and not s.cross, (h, w, C, hd, gd, K)),
    Formula("Ω(local)", "2N·C·(hd + gd) + 2hd·(N(2w+1) − w(w+1)), w = ⌊L/2⌋",
            f"Warner et al. 2024, ModernBERT, arXiv:2412.13663, §2.1.1 (local attention: a sliding window of L "
            f"tokens, w = L/2 on each side; Beltagy et al. 2020, Longformer §3.1; `unmasked`); {GQA}",
            lambda: 2 * hw * C * (hd + gd) + 2 * hd * local_pairs(hw, Lw),
            lambda s, c: c.unmasked and bool(s.local) and not s.cross, (h, w, C, hd, gd, Lw)),
    Formula("Ω(causal)", "2N·C·(hd + gd) + 2hd·N(N+1)/2",
            f"Vaswani et al. 2017, §3.2.3 (masked decoder attention, `unmasked`); {GQA}",
            lambda: 2 * hw * C * (hd + gd) + hd * hw * (hw + 1),
            lambda s, c: c.unmasked and s.causal and not s.cross, (h, w, C, hd, gd)),
    Formula("Ω(GQA)", "2N·C·(hd + gd) + 2N²·hd", GQA,
            lambda: 2 * hw * C * (hd + gd) + 2 * hw**2 * hd,
            lambda s, c: not s.cross and not s.standard and s.sr_ratio == 1 and s.window is None, (h, w, C, hd, gd),
            "", "a causal, sliding or local mask is counted dense (`--convention unmasked` counts the kept pairs)"),
    Formula("Ω(MSA)", "4hwC² + 2(hw)²C",
            f"{SWIN}, Eq. (1): global multi-head self-attention (ViT, BERT, GPT: hw = N tokens)",
            lambda: 4 * hw * C**2 + 2 * hw**2 * C,
            lambda s, c: not s.cross and s.standard and s.sr_ratio == 1 and s.window is None, (h, w, C),
            "", "a causal or local mask is counted dense (`--convention unmasked` counts the kept pairs)"),
]


MLA_DIMS = ("kv_rank", "rope_dim", "nope_dim", "v_dim", "q_rank")


def _zero(e) -> bool:
    """e == 0 as an identity (a Piecewise: on every branch)."""
    e = sympy.piecewise_fold(sympy.sympify(e))
    if isinstance(e, sympy.Piecewise):
        return all(_zero(x) for x, _ in e.args)
    e = sympy.expand(e)
    return e == 0 or (e.has(sympy.floor) and sympy.simplify(e) == 0)  # DETR's conv grid: floor()


def match(site: Site, conv: Convention) -> Formula | None:
    return next((f for f in FORMULAS if f.applies(site, conv)), None)


def expected(f: Formula, site: Site, batch, conv: Convention):
    """The formula's MACs for the site's whole batch (2× under the flops convention)."""
    return f.expr().subs(site.bindings()) * batch * (2 if conv.flops else 1)


def difference(f: Formula, site: Site, batch, conv: Convention):
    """IR minus formula: 0 for an identity."""
    d = sympy.piecewise_fold(sympy.sympify(site.macs) - expected(f, site, batch, conv))
    return 0 if _zero(d) else sympy.expand(d)


# -- reading the sites off the IR ------------------------------------------------------------
def _projection_input(g: Graph, name: str):
    """The tensor a projection reads, walking back from an attention operand (through
    split_heads, norms, rotary, repeat_kv, transpose and a fused qkv's split)."""
    n = g[name]
    for _ in range(32):
        if n.op == "linear":
            return g[n.inputs[0]], n.a["in_features"]
        if not n.inputs:
            break
        n = g[n.inputs[0]]
    raise ValueError(f"no projection before %{name}")


def _per_sample(node, width, batch):
    return analysis._simplify(sympy.sympify(numel(node.shape)) / (batch * width))


def _group(g: Graph, path: str) -> str:
    """A stage (`layers.0`), a stack (`encoder`) or '' (the model) above the attention's block."""
    block = path.rsplit(".", 1)[0] if "." in path else ""
    parts = block.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:i]) in g.modules:
            return ".".join(parts[:i])
    return ""


def sites(g: Graph, batch, conv: Convention = MACS) -> list[Site]:
    """Every attention sub-layer of `g`, in graph order."""
    cores: dict[str, list] = {}
    for n in g:
        if n.op == "attention" or n.op == "matmul":
            cores.setdefault(n.module, []).append(n)
    out = []
    for path, nodes in cores.items():
        args = dict(g.modules[path].args) if path in g.modules else {}
        if "heads" not in args:
            continue
        inside = [n for n in g if n.module == path or n.module.startswith(path + ".")]
        fused = next((n for n in nodes if n.op == "attention"), None)
        scores = fused or next(n for n in nodes if n.op == "matmul")
        q, q_in = _projection_input(g, scores.inputs[0])
        k, k_in = _projection_input(g, scores.inputs[1])
        tokens, keys = _per_sample(q, q_in, batch), _per_sample(k, k_in, batch)
        sliding = fused.a.get("sliding") if fused else None
        sliding = sliding or next((n.a["window"] for n in inside if n.op == "sliding_mask"), None)
        chunk = (fused.a.get("chunk") if fused else None) or next(
            (n.a["chunk"] for n in inside if n.op == "chunked_mask"), None)
        local = (fused.a.get("local") if fused else None) or next(
            (n.a["window"] for n in inside if n.op == "local_mask"), None)
        causal = bool(args.get("causal") or (fused and fused.a.get("causal"))
                      or any(n.op == "causal_mask" for n in inside))
        parent = g.modules.get(path.rsplit(".", 1)[0]) if "." in path else None
        grid = dict(parent.args).get("grid") if parent else None
        sr = args.get("sr_ratio", 1)
        heads = args["heads"]
        out.append(Site(path, _group(g, path), g.modules[path].cls == "CrossAttention", args["dim"], heads,
                        args.get("kv_heads", heads), args.get("head_dim", args["dim"] // heads), tokens,
                        keys, grid, args.get("window"), sr, causal, sliding,
                        analysis._simplify(sum((analysis.node_cost(g, n, conv) for n in inside), 0)),
                        {k: args.get(k) for k in MLA_DIMS} if args.get("qkv") == "mla" else None, chunk, local))
    return out


# -- grouped results -----------------------------------------------------------------------------
@dataclass
class Row:
    """Attention sub-layers of one group with the same formula and the same dims."""

    group: str
    formula: Formula | None
    sites: list[Site] = field(default_factory=list)
    diffs: list = field(default_factory=list)  # IR − formula per site

    @property
    def ok(self) -> bool:
        return self.formula is not None and all(d == 0 for d in self.diffs)

    @property
    def macs(self):
        return analysis._simplify(sum((s.macs for s in self.sites), 0))


def check(g: Graph, batch, conv: Convention = MACS) -> list[Row]:
    """The sites of `g` grouped by stage, formula and dims, each with IR − formula."""
    rows: dict[tuple, Row] = {}
    for s in sites(g, batch, conv):
        f = match(s, conv)
        shown = tuple(str(s.bindings()[x]) for x in f.uses) if f else (s.path,)
        key = (s.group, f.name if f else None, shown)
        row = rows.setdefault(key, Row(s.group, f))
        row.sites.append(s)
        row.diffs.append(difference(f, s, batch, conv) if f else None)
    return list(rows.values())


def global_overrides(spec) -> list[str]:
    """`--set` overrides that make every windowed stack global (Swin §3.2's MSA) and every
    sliding-window stack causal (full attention); [] when the model has neither."""
    out = []
    for s in spec.stacks:
        names = {getattr(m, "name", None) for m in s.masks} | {s.attention.kind}
        if names & {"windowed", "shifted_windows"}:
            out.append(f"{s.role}.attention=global")
        elif "sliding" in names:
            out.append(f"{s.role}.attention=causal")
    return out
