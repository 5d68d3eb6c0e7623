"""The op registry: one flat list of op kinds, each with all its rules side by side.

An op kind is declared once, as a class decorated with `@op(name, *props)`:

    @op("linear", HAS_PARAMS, MAC)
    class Linear:
        '''y = x Wᵀ + b: (..., in) -> (..., out).'''
        def shape(x, *, out_features, bias=True): ...      # shape rule
        def params(x, *, out_features, bias=True): ...     # parameter shapes by name
        def macs(out, x, *, out_features, bias=True): ...  # multiply-accumulates
        torch = Torch(init="nn.Linear(...)", call="self.{mod}({0})")

Passes query properties (`ELEMENTWISE`, `SHAPE_ONLY`, ...) rather than op names, as in
tinygrad. Registering a name twice is an error, and `tests/test_ops.py` walks the registry
and fails if an op lacks a facet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy

# -- properties --------------------------------------------------------------------------
HAS_PARAMS = "has_params"  # owns trainable parameters
MAC = "mac"  # counted in the default multiply-accumulate convention
ELEMENTWISE = "elementwise"  # one output element per input element, cheap
SHAPE_ONLY = "shape_only"  # moves data, computes nothing (reshape, permute, roll, ...)
NORM = "norm"  # normalisation: counted under the `norms` option
SOFTMAX = "softmax"  # counted under the `softmax` option
SOURCE = "source"  # no tensor operands (inputs, parameters, constants)
CONSTANT = "constant"  # value known at build time (foldable)
IMPURE = "impure"  # randomness in training (dropout): never CSE'd

# Categories of the non-MAC counting options, see graphspec/analysis.py.
COST_CATEGORIES = {NORM: "norms", SOFTMAX: "softmax", ELEMENTWISE: "elementwise"}


class ShapeError(ValueError):
    """A shape rule rejected its operands (wrong rank, indivisible sizes, ...)."""


@dataclass(frozen=True)
class Torch:
    """How an op reads in generated PyTorch code.

    `call` is a format string over the operand expressions `{0}`, `{1}`, ..., the attributes
    by name, `{mod}` (the submodule attribute, for ops with parameters) and `{ref}` (the
    module's first input, for sizes and devices); or a function (operands, attrs) -> str where
    the code depends on attribute values. `init` builds the submodule in `__init__` (string or
    function of attrs); `setup` are further `__init__` statements (parameters and buffers the op
    keeps on its owning module, their init), each a string or a function of attrs. `shared` is the call when `weights` names another
    module's parameters (a tied head). `comment` is the shape comment of a reshape (string or
    function of the attrs). `helpers` names free functions of codegen/templates/helpers.py.j2.
    """

    call: str | Callable[..., str]
    init: str | Callable[..., str] | None = None
    helpers: tuple[str, ...] = ()
    setup: tuple[str | Callable[[dict], str], ...] = ()
    shared: str | None = None
    comment: str | Callable[[dict], str] | None = None


@dataclass(frozen=True)
class OpDef:
    name: str
    props: frozenset[str]
    doc: str
    shape: Callable[..., tuple]
    params: Callable[..., dict[str, tuple]] | None = None
    buffers: Callable[..., dict[str, tuple]] | None = None  # state that is not trained (BN statistics)
    macs: Callable[..., Any] | None = None
    torch: Torch | None = None
    relax: Callable[..., Any] | None = None  # emitter: see backends/tvm.py
    onnx: Callable[..., Any] | None = None  # emitter: see backends/onnx.py
    eval: Callable[..., Any] | None = None  # eval(params, *tensors, **attrs): see graphspec/interpret.py
    defaults: dict[str, Any] = field(default_factory=dict)

    def has(self, prop: str) -> bool:
        return prop in self.props


REGISTRY: dict[str, OpDef] = {}


def op(name: str, *props: str) -> Callable[[type], type]:
    """Class decorator that registers an op kind; refuses duplicates."""

    def deco(cls: type) -> type:
        if name in REGISTRY:
            raise ValueError(f"op kind {name!r} is registered twice")
        ns = vars(cls)
        missing = [f for f in ("shape",) if f not in ns]
        if missing:
            raise TypeError(f"op {name!r} lacks {missing}")
        if HAS_PARAMS in props and "params" not in ns:
            raise TypeError(f"op {name!r} has parameters but no `params` rule")
        if MAC in props and "macs" not in ns:
            raise TypeError(f"op {name!r} is a MAC op but has no `macs` formula")
        REGISTRY[name] = OpDef(
            name=name,
            props=frozenset(props),
            doc=(cls.__doc__ or "").strip(),
            shape=ns["shape"],
            params=ns.get("params"),
            buffers=ns.get("buffers"),
            macs=ns.get("macs"),
            torch=ns.get("torch"),
            relax=ns.get("relax"),
            onnx=ns.get("onnx"),
            eval=ns.get("eval"),
            defaults=dict(ns.get("defaults", {})),
        )
        return cls

    return deco


def get(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op kind {name!r}; registered: {sorted(REGISTRY)}") from None


class _Lazy:
    """A module imported on first attribute access, so that `import graphspec` does not load
    torch; the `eval` rules use `th.` and `F.` as they would use `torch.` and `F.`."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attr)


th = _Lazy("torch")
F = _Lazy("torch.nn.functional")


# -- shape arithmetic shared by the rules ------------------------------------------------
def numel(shape: tuple) -> Any:
    return math.prod(shape) if shape else 1


def is_int(d: Any) -> bool:
    return isinstance(d, int) or (isinstance(d, sympy.Integer))


def exact_div(a: Any, b: Any, what: str) -> Any:
    """a / b, refusing a remainder when both are known integers."""
    if is_int(a) and is_int(b):
        a, b = int(a), int(b)
        if b == 0 or a % b:
            raise ShapeError(f"{what}: {a} is not divisible by {b}")
        return a // b
    return sympy.simplify(sympy.sympify(a) / b)


def floordiv(a: Any, b: int) -> Any:
    return a // b if is_int(a) else sympy.floor(sympy.sympify(a) / b)


def norm_dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


def broadcast(a: tuple, b: tuple) -> tuple:
    """NumPy broadcasting of two shapes."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1 or x == y or sympy.simplify(sympy.sympify(x) - y) == 0:
            out.append(x)
        else:
            raise ShapeError(f"shapes {a} and {b} do not broadcast")
    return tuple(reversed(out))
