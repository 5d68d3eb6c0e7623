"""Reading an untrusted Hugging Face `config.json`: JSON only, bounded, every value type-checked.

    cfg = read_config(path)                       # dict; SpecError (exit 2) if it is not one
    r = Reader(cfg, DEFAULTS["llama"], "config.json", text)
    d = r.int("hidden_size"); eps = r.float("rms_norm_eps")
    r.finish()                                    # every problem at once, each at its line

A config file is data: it is parsed with `json.loads` (no pickle, no code, no `auto_map` or
`trust_remote_code` is ever followed), at most 1 MiB of UTF-8 like a spec (graphspec/spec/
source.py), nested at most 16 deep. A `Reader` records which keys it read; `finish` reports
each key it neither read nor knows to be irrelevant to the model's function (token ids,
initialisation, generation settings), so an option graphspec does not understand is an error
naming it, never a silently different model.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from graphspec.spec.errors import Diagnostic, Diagnostics, Loc, SpecError
from graphspec.spec.source import display, read_spec_file

MAX_DEPTH = 16
MAX_DIGITS = 100  # of one integer: a config's largest is a vocabulary or a token id

# Keys of every PretrainedConfig, and common ones, that do not change what the model computes.
IGNORED = {
    "_name_or_path", "architectures", "chunk_size_feed_forward", "dtype", "torch_dtype", "id2label", "label2id",
    "model_type", "output_attentions", "output_hidden_states", "problem_type", "return_dict",
    "transformers_version", "initializer_range", "initializer_factor", "init_std", "use_cache", "bos_token_id",
    "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id", "tokenizer_class", "prefix",
    "task_specific_params", "num_labels", "finetuning_task", "gradient_checkpointing", "classifier_dropout",
    "is_encoder_decoder", "tie_encoder_decoder", "forced_bos_token_id", "forced_eos_token_id",
    "output_past",  # old transformers' generate() cache switch (as use_cache): xlm-roberta-base's config.json
    "max_length", "min_length", "num_beams", "do_sample", "temperature", "top_k", "top_p",
    "no_repeat_ngram_size", "length_penalty", "early_stopping", "bad_words_ids", "num_return_sequences",
    "repetition_penalty", "output_scores", "return_dict_in_generate", "use_return_dict", "_attn_implementation",
    "attn_implementation", "pruned_heads", "torchscript", "tf_legacy_loss", "use_bfloat16",
    "_attn_implementation_autoset", "quantization_config", "keys_to_ignore_at_inference",
}


def read_config(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path` (a regular UTF-8 file of at most 1 MiB)."""
    try:
        text = read_spec_file(Path(path))
    except SpecError as e:  # its wording is a spec's
        raise SpecError([Diagnostic(d.loc, d.message.replace("spec ", "config ").replace("a spec may", "a config may"),
                                    "give the config.json of a Hugging Face model") for d in e.diagnostics]) from None
    return parse_config(text, display(Path(path)))


def parse_config(text: str, file: str = "<config>") -> dict[str, Any]:
    def no_constants(name: str):
        raise ValueError(f"{name} is not a JSON number")

    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_DIGITS:
            raise ValueError(f"an integer of {len(digits.lstrip('-')):,} digits (a config's numbers have at most "
                             f"{MAX_DIGITS})")
        return int(digits)

    try:
        data = json.loads(text, parse_constant=no_constants, parse_int=bounded_int)
    except (ValueError, RecursionError) as e:
        line, col = getattr(e, "lineno", 1), getattr(e, "colno", 1)
        msg = getattr(e, "msg", None) or str(e)
        raise SpecError.at(Loc(file, line, col), f"not a JSON config: {msg}",
                           "give the config.json of a Hugging Face model (JSON, not YAML or Python)") from None
    if not isinstance(data, dict):
        raise SpecError.at(Loc(file, 1, 1), f"a config is a JSON object, not {type(data).__name__}",
                           "give the config.json of a Hugging Face model")
    if _depth(data) > MAX_DEPTH:
        raise SpecError.at(Loc(file, 1, 1), f"the config is nested more than {MAX_DEPTH} levels deep",
                           "a Hugging Face config is a flat object with a few nested ones")
    return data


def _depth(v: Any, d: int = 0) -> int:
    if d > MAX_DEPTH:
        return d
    if isinstance(v, dict):
        return max((_depth(x, d + 1) for x in v.values()), default=d + 1)
    if isinstance(v, list):
        return max((_depth(x, d + 1) for x in v), default=d + 1)
    return d


def show(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


class Reader:
    """Typed access to one config's keys, with `defaults` for keys the file leaves out."""

    def __init__(self, data: dict, defaults: dict, file: str = "<config>", text: str | None = None,
                 ignored: set[str] = frozenset()):
        self.data, self.defaults, self.file, self.text = data, defaults, file, text
        self.ignored = IGNORED | set(ignored)
        self.used: set[str] = set()
        self.diags = Diagnostics()
        self.base = False  # `graphspec import --base`: the family's base model, whatever head is declared
        self.left_out: str | None = None  # the declared class whose head --base left out
        self.base_class = ""  # and the base model's class

    def loc(self, key: str) -> Loc:
        """The line of `"key":` in the file's text (1:1 when it is not there)."""
        if self.text:
            m = re.search(r'"' + re.escape(key) + r'"\s*:', self.text)
            if m:
                line = self.text.count("\n", 0, m.start()) + 1
                return Loc(self.file, line, m.start() - (self.text.rfind("\n", 0, m.start()) + 1) + 1)
        return Loc(self.file, 1, 1)

    def error(self, key: str, message: str, fix: str | None = None) -> None:
        d = Diagnostic(self.loc(key), message, fix)
        if d not in self.diags.items:  # a key read twice (n_positions: the context and the table) is reported once
            self.diags.items.append(d)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data[key] if key in self.data else self.defaults.get(key)

    def _typed(self, key: str, ok, what: str, default: Any):
        v = self.raw(key)
        if v is None and key not in self.data and key not in self.defaults:
            return default
        if not ok(v):
            self.error(key, f"{key} must be {what}, not {show(v)}", f"write {key} as {what}")
            return default
        return v

    def int(self, key: str, minimum: int = 1, default: int = 1, optional: bool = False) -> int | None:
        def ok(v):
            return (optional and v is None) or (isinstance(v, int) and not isinstance(v, bool) and v >= minimum
                                                and v < 2 ** 31)
        return self._typed(key, ok, f"an integer from {minimum} to 2**31 - 1" + (" or null" if optional else ""),
                           default)

    def float(self, key: str, minimum: float = 0.0, default: float = 1.0, optional: bool = False) -> float | None:
        def ok(v):
            return (optional and v is None) or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                and math.isfinite(v) and v >= minimum)
        v = self._typed(key, ok, f"a number >= {minimum:g}" + (" or null" if optional else ""), default)
        return v if v is None else float(v)

    def bool(self, key: str, default: bool = False) -> bool:
        return self._typed(key, lambda v: isinstance(v, bool), "true or false", default)

    def str(self, key: str, default: str = "", optional: bool = False) -> str | None:
        return self._typed(key, lambda v: isinstance(v, str) or (optional and v is None),
                           "a string" + (" or null" if optional else ""), default)

    def ints(self, key: str, n: int | None = None, minimum: int = 1) -> list[int]:
        v = self.raw(key)
        good = isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and minimum <= x < 2 ** 31
                                           for x in v) and len(v) > 0
        if not good or (n is not None and len(v) != n):
            what = f"a list of {n if n is not None else 'one or more'} integers >= {minimum}"
            self.error(key, f"{key} must be {what}, not {show(v)}", f"write {key} as {what}")
            return [1] * (n or 1)
        return v

    def numbers(self, key: str, n: int) -> list[float]:
        v = self.raw(key)
        if not (isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                             and math.isfinite(x) and x > 0 for x in v)):
            self.error(key, f"{key} must be a list of {n} positive numbers, not {show(v)}")
            return [1.0] * n
        return v

    def expect(self, key: str, allowed: tuple, why: str, fix: str | None = None) -> None:
        """`key` must hold one of `allowed` (what graphspec expresses); anything else is an error."""
        v = self.raw(key)
        if v not in allowed:
            self.error(key, f"option {key} = {show(v)} is not expressible in graphspec: {why}",
                       fix or f"graphspec imports {key} = {' or '.join(show(a) for a in allowed)}")

    def finish(self, family: str) -> None:
        for key in self.data:
            if key not in self.used and key not in self.ignored:
                self.error(key, f"option {key} = {show(self.data[key])} is not known to graphspec's {family} "
                                "importer, so the model it describes cannot be checked",
                           "remove it if it does not change the model, or write the spec by hand (docs/spec_dsl.md)")
        self.diags.raise_if_any()
