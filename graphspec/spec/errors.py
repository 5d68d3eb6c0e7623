"""Spec errors that name the file, line, column and the fix.

    specs/swin_t.yaml:15:5: error: window 12 does not divide the 56×56 map of stage 1
      fix: use 7, 8, 14 or 28

Problems are collected (`Diagnostics.add`) and raised once (`Diagnostics.raise_if_any`), so a
user sees every mistake in a spec at the same time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Loc:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    loc: Loc | None
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        text = f"{where}error: {self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class SpecError(Exception):
    """A user mistake in a spec or an override: one or more diagnostics. Exit code 2."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def at(cls, loc: Loc | None, message: str, fix: str | None = None) -> SpecError:
        return cls([Diagnostic(loc, message, fix)])


@dataclass
class Diagnostics:
    items: list[Diagnostic] = field(default_factory=list)

    def add(self, loc: Loc | None, message: str, fix: str | None = None) -> None:
        self.items.append(Diagnostic(loc, message, fix))

    def extend(self, err: SpecError) -> None:
        self.items.extend(err.diagnostics)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def divisors(n: int) -> list[int]:
    """The divisors of n ascending, for a fix that names some: trial division up to √n, and past
    n = 10**10 only the divisors below 10**5 and their cofactors (a fix needs a few, and a spec's
    `--set h=9**64` must not loop for ever)."""
    small = [d for d in range(1, min(math.isqrt(n), 10**5) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})
