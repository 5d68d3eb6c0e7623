"""Module instances grouped into classes, written once and repeated.

Instances of one `ModuleInfo.cls` share a class when their programs are the same up to
*optional* steps: Swin's shifted block is the unshifted block plus two cyclic shifts and a
window mask, the last stage lacks patch merging, the first block of a stochastic-depth stack
lacks drop_path. The programs are aligned (longest common subsequence on step keys) and every
step missing from some instance must be one the generated code can skip:

- a pass-through op (`roll`, `dropout`, `drop_path`, `causal_mask`, `add_window_mask`): absent,
  its first operand flows on; the class guards it (`if self.shift_size:`) or builds it as an
  identity (`DropPath(0.0)`);
- a constant source (`shift_mask`): a buffer that is None where absent;
- a norm (ModernBERT's first block has no attn_norm): built as `nn.Identity()` where absent;
- a child call with one input and one output (`self.downsample = ... if downsample else None`).

A child that is one class in some instances and another class in others, at the same attribute
(DeepSeek's dense first layer and MoE later ones), is one step with alternatives, written as
Hugging Face writes it: `self.mlp = MoE(...) if moe else SwiGLU(...)`.

Instances that still differ get classes of their own, named by their top-level module
(`EncoderBlock`, `DecoderBlock`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphspec.codegen.names import Namespace, class_name
from graphspec.codegen.program import CodegenError, ModuleTree, Program, Step

from graphspec.ops import CONSTANT, NORM, SOURCE, get

PASS_THROUGH = frozenset({"roll", "dropout", "drop_path", "causal_mask", "sliding_mask", "chunked_mask", "local_mask",
                          "add_window_mask"})
ABSENT = ("absent",)


@dataclass
class MStep:
    """A step of a class: present in some instances (`per`), with operand refs per instance."""

    kind: str
    key: tuple
    per: dict[str, Step] = field(default_factory=dict)  # path -> the instance's step
    irefs: dict[str, list[tuple]] = field(default_factory=dict)  # path -> refs, merged indices
    refs: list[tuple] = field(default_factory=list)  # merged refs

    @property
    def first(self) -> Step:
        return next(iter(self.per.values()))


@dataclass
class ClassDef:
    cls: str  # ModuleInfo class name
    paths: list[str]
    n_in: int
    n_out: int
    steps: list[MStep]
    outputs: list[tuple]
    iouts: dict[str, list[tuple]]
    name: str = ""
    uid: int = 0

    def optional(self, j: int) -> bool:
        return len(self.steps[j].per) < len(self.paths)


def _ref_form(prog: Program) -> tuple[list[list[tuple]], list[tuple]]:
    where = {v: ("in", i) for i, v in enumerate(prog.inputs)}
    refs = []
    for j, s in enumerate(prog.steps):
        refs.append([where[v] for v in s.ins])
        for k, v in enumerate(s.outs):
            where[v] = ("step", j, k)
    return refs, [where[v] for v in prog.outputs]


def _lcs(a: list, b: list) -> list[tuple[int, int]]:
    n, m = len(a), len(b)
    t = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            t[i][j] = t[i + 1][j + 1] + 1 if a[i] == b[j] else max(t[i + 1][j], t[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif t[i + 1][j] >= t[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _loose(key: tuple) -> tuple:
    """A child call's key without its class: alternatives at one attribute match."""
    return key[:3] if key[0] == "call" and key[2] is None else key


def _collides(d: ClassDef) -> bool:
    """Two child calls at one attribute (they would both be `self.mlp`)."""
    attrs = [ms.key[1] for ms in d.steps if ms.kind == "call" and ms.key[2] is None]
    return len(attrs) != len(set(attrs))


def _remap(ref: tuple, idx: dict[int, int]) -> tuple:
    return ("step", idx[ref[1]], ref[2]) if ref[0] == "step" else ref


def _as_calls(prog: Program) -> Program:
    """`prog` with each loop over a one-element list written as the call of that element."""
    steps = [Step("call", s.ins, s.outs, attr=s.attr, index=0, children=s.children)
             if s.kind == "loop" and s.whole and len(s.children) == 1 else s for s in prog.steps]
    return prog if steps == prog.steps else Program(prog.path, prog.inputs, prog.outputs, steps)


def _skippable(ms: MStep) -> bool:
    s = ms.first
    if s.kind == "loop":  # the rest of a list after its first element: empty in a one-block stage
        return s.tail
    if s.kind == "op":
        d = get(s.node.op)
        return (s.node.op in PASS_THROUGH or (d.has(SOURCE) and d.has(CONSTANT) and not s.ins)
                or (d.has(NORM) and len(s.ins) == 1))  # a norm some blocks lack: nn.Identity() there
    return len(s.ins) == 1 and len(s.outs) == 1


class Classes:
    """Groups the instances of a ModuleTree into ClassDefs, children before parents."""

    def __init__(self, tree: ModuleTree):
        self.tree = tree
        self.of: dict[str, ClassDef] = {}
        self.defs: list[ClassDef] = []
        for p in self._post_order(""):
            self._add(p)
        self._name()

    def _post_order(self, p: str) -> list[str]:
        out = []
        for c in self.tree.children[p]:
            out += self._post_order(c)
        return out + [p]

    def keys(self, prog: Program) -> list[tuple]:
        out = []
        for s in prog.steps:
            if s.kind == "op":
                out.append(s.key)
            else:
                uids = {self.of[c].uid for c in s.children}
                if len(uids) != 1:
                    raise CodegenError(f"the modules {', '.join(s.children)} of one list have different "
                                       "structure; a loop needs one class")
                out.append(s.key + (uids.pop(),))
        return out

    def _add(self, p: str) -> None:
        prog = self.tree.program(p, 0)
        for ci in range(1, self.tree.calls(p)):
            other = self.tree.program(p, ci)
            if self.keys(other) != self.keys(prog) or _ref_form(other) != _ref_form(prog):
                raise CodegenError(f"module {p!r} is called {self.tree.calls(p)} times with different steps")
        cls = self.tree.g.modules[p].cls
        for d in self.defs:
            if d.cls == cls:
                merged = self._merge(d, p, prog) or self._merge_as_calls(d, p, prog)
                if merged is not None:
                    self.of.update({q: d for q in merged.paths})
                    d.__dict__.update(merged.__dict__)
                    return
        d = self._new(cls, p, prog, len(self.defs))
        self.defs.append(d)
        self.of[p] = d

    def _new(self, cls: str, p: str, prog: Program, uid: int) -> ClassDef:
        refs, outs = _ref_form(prog)
        steps = [MStep(s.kind, k, {p: s}, {p: r}) for s, k, r in zip(prog.steps, self.keys(prog), refs, strict=True)]
        for ms in steps:
            ms.refs = ms.irefs[p]
        return ClassDef(cls, [p], len(prog.inputs), len(prog.outputs), steps, outs, {p: outs}, uid=uid)

    def _merge_as_calls(self, d: ClassDef, p: str, prog: Program) -> ClassDef | None:
        """The merge again with every one-element list run as a call of its element: a one-block
        stage with a PEG after its first block (Twins) reads `self.blocks[0](x)`, then an empty
        `for blk in self.blocks[1:]`, like the deeper stages."""
        originals = [*(self.tree.program(q, 0) for q in d.paths), prog]
        progs = [_as_calls(x) for x in originals]
        if all(a is b for a, b in zip(progs, originals, strict=True)):
            return None
        paths = [*d.paths, p]
        out = self._new(d.cls, paths[0], progs[0], d.uid)
        for q, pr in zip(paths[1:], progs[1:], strict=True):
            out = self._merge(out, q, pr)
            if out is None:
                return None
        return out

    def _merge(self, d: ClassDef, p: str, prog: Program) -> ClassDef | None:
        """d and p's program as one class: unmatched steps of d first, else p's first (a one-block
        stage's downsample after the tail of the blocks that a deeper stage runs). Children of
        different classes at one attribute are paired as alternatives only where apart they
        would collide."""
        for loose in (False, True):
            for d_first in (True, False):
                merged = self._merge_ordered(d, p, prog, d_first, loose)
                if merged is not None and not _collides(merged):
                    return merged
        return None

    def _merge_ordered(self, d: ClassDef, p: str, prog: Program, d_first: bool,
                       loose: bool = False) -> ClassDef | None:
        if len(prog.inputs) != d.n_in or len(prog.outputs) != d.n_out:
            return None
        keys = self.keys(prog)
        key = _loose if loose else (lambda k: k)
        pairs = _lcs([key(s.key) for s in d.steps], [key(k) for k in keys])
        # merged order: walk both sequences, unmatched steps of d first (or of p)
        order: list[tuple[int | None, int | None]] = []
        i = j = 0
        for a, b in pairs + [(len(d.steps), len(keys))]:
            mine, theirs = [(x, None) for x in range(i, a)], [(None, y) for y in range(j, b)]
            order += mine + theirs if d_first else theirs + mine
            if a < len(d.steps):
                order.append((a, b))
            i, j = a + 1, b + 1
        old_idx = {a: n for n, (a, _) in enumerate(order) if a is not None}
        new_idx = {b: n for n, (_, b) in enumerate(order) if b is not None}
        refs, outs = _ref_form(prog)
        steps: list[MStep] = []
        for a, b in order:
            if a is not None:
                old = d.steps[a]
                ms = MStep(old.kind, old.key, dict(old.per),
                           {q: [_remap(r, old_idx) for r in rs] for q, rs in old.irefs.items()})
            else:
                ms = MStep(prog.steps[b].kind, keys[b])
            if b is not None:
                ms.per[p] = prog.steps[b]
                ms.irefs[p] = [_remap(r, new_idx) for r in refs[b]]
            steps.append(ms)
        paths = d.paths + [p]
        merged = ClassDef(d.cls, paths, d.n_in, d.n_out, steps, [], {}, uid=d.uid)
        merged.iouts = {q: [_remap(r, old_idx) for r in rs] for q, rs in d.iouts.items()}
        merged.iouts[p] = [_remap(r, new_idx) for r in outs]
        for m, ms in enumerate(steps):
            if len(ms.per) < len(paths) and not _skippable(ms):
                return None
            ms.refs = self._choose(steps, paths, ms.irefs, self._chain(steps, m, paths))
            if ms.refs is None:
                return None
        merged.outputs = self._choose(steps, paths, merged.iouts)
        return merged if merged.outputs is not None else None

    @staticmethod
    def _chain(steps: list[MStep], m: int, paths: list[str]) -> list[tuple]:
        """For an optional skippable step, the optional skippable steps just before it that none of
        its instances has, nearest first: per-layer masks (Gemma-2's sliding and causal layers)
        read as one chain `x -> sliding_mask -> causal_mask`, a stage's tail of blocks and its
        downsample as `x -> blocks[1:] -> downsample`, each skipped where absent."""
        ms = steps[m]
        if len(ms.per) == len(paths) or not _skippable(ms):
            return []
        out = []
        for k in range(m - 1, -1, -1):
            s = steps[k]
            if len(s.per) == len(paths) or not _skippable(s) or set(s.per) & set(ms.per):
                break
            out.append(("step", k, 0))
        return out

    @staticmethod
    def _choose(steps: list[MStep], paths: list[str], irefs: dict[str, list[tuple]],
                prefer: list[tuple] = ()) -> list[tuple] | None:
        """Merged operand refs that every instance reads, looking through its absent steps (the
        first operand tries `prefer` first)."""

        def resolve(q: str, ref: tuple) -> tuple:
            while ref[0] == "step" and q not in steps[ref[1]].per:
                s = steps[ref[1]]
                if s.kind == "op" and not s.first.ins:
                    return ABSENT  # an absent constant source: the operand is None
                ref = s.refs[0]
            return ref

        width = max(len(r) for r in irefs.values())
        out = []
        for o in range(width):
            cands = list(dict.fromkeys([*(prefer if o == 0 else ()), *(r[o] for r in irefs.values() if len(r) > o)]))
            for c in cands:
                if all(resolve(q, c) == (irefs[q][o] if len(irefs[q]) > o else ABSENT) for q in irefs):
                    out.append(c)
                    break
            else:
                return None
        return out

    def _name(self) -> None:
        ns = Namespace({"DropPath", "Module"})
        by_cls: dict[str, list[ClassDef]] = {}
        for d in self.defs:
            by_cls.setdefault(d.cls, []).append(d)
        for d in self.defs:
            group = by_cls[d.cls]
            base = class_name(d.cls)
            tops = {g.paths[0].split(".")[0] if g.paths[0] else "root" for g in group}
            if len(tops) > 1:  # EncoderBlock, DecoderBlock; two MoE classes of one stack: MoE, MoE2
                top = d.paths[0].split(".")[0] if d.paths[0] else "root"
                base = class_name(top) + base
            name, k = base, 2
            while name in ns:  # DecoderBlock, DecoderBlock2, ...
                name, k = f"{base}{k}", k + 1
            d.name = ns.create(name)
