"""Legal, unique Python names for generated code, in the manner of torch.fx's `_Namespace`.

Every name that comes from a spec (the spec name, module paths, node names) passes through
`identifier` or `class_name` before it is written into source, and every text that comes from
a spec passes through `docstring_text` / `comment_text`. Nothing from a spec is ever formatted
into code unescaped: a hostile spec name such as `x\"\"\"; import os #` yields the identifier
`X_import_os` and an inert docstring.
"""

from __future__ import annotations

import builtins
import keyword
import re

# Attributes every nn.Module has: a submodule or a stored argument must not shadow them.
MODULE_ATTRS = frozenset({
    "forward", "training", "train", "eval", "apply", "parameters", "named_parameters", "buffers",
    "named_buffers", "children", "named_children", "modules", "named_modules", "state_dict",
    "load_state_dict", "register_buffer", "register_parameter", "add_module", "to", "cuda", "cpu",
    "type", "float", "double", "half", "bfloat16", "zero_grad", "requires_grad_", "extra_repr",
    "get_submodule", "get_parameter", "get_buffer", "register_module", "dump_patches",
    "call_super_init", "T_destination", "share_memory", "compile", "ipu", "xpu", "mtia",
})


def identifier(text: str, fallback: str = "x") -> str:
    """`text` as a snake_case Python identifier: illegal characters become `_`, a leading digit
    gets a `_` prefix, keywords get a `_` suffix."""
    s = re.sub(r"\W+", "_", str(text), flags=re.ASCII).strip("_")
    s = re.sub(r"_+", "_", s)
    if not s:
        s = fallback
    if s[0].isdigit():
        s = "_" + s
    if keyword.iskeyword(s) or keyword.issoftkeyword(s):
        s += "_"
    return s


def class_name(text: str, fallback: str = "Model") -> str:
    """`text` as a CamelCase class name (`swin_t` -> `SwinT`)."""
    words = [w for w in re.split(r"\W+|_", str(text), flags=re.ASCII) if w]
    s = "".join(w[:1].upper() + w[1:] for w in words)
    if not s:
        s = fallback
    if s[0].isdigit():
        s = fallback + s
    if keyword.iskeyword(s) or hasattr(builtins, s):
        s += "_"
    return s


def docstring_text(text: str) -> str:
    """Text safe inside a triple-quoted docstring: one line, no quotes run, no escapes."""
    s = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))
    return s.replace("\\", "\\\\").replace('"', "'").strip()


def comment_text(text: str) -> str:
    """Text safe in a `#` comment: one line."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).strip()


class Namespace:
    """Hands out unique names: `name`, then `name_1`, `name_2`, ... Reserved names are never
    handed out."""

    def __init__(self, reserved: set[str] | frozenset[str] = frozenset()):
        self._used: set[str] = set(reserved)
        self._by_key: dict[object, str] = {}

    def reserve(self, name: str) -> None:
        self._used.add(name)

    def __contains__(self, name: str) -> bool:
        return name in self._used

    def create(self, candidate: str, key: object = None) -> str:
        """A fresh name for `candidate`; with a `key`, the same key gets the same name again."""
        if key is not None and key in self._by_key:
            return self._by_key[key]
        base = candidate
        name, k = base, 1
        while name in self._used:
            name = f"{base}_{k}"
            k += 1
        self._used.add(name)
        if key is not None:
            self._by_key[key] = name
        return name
