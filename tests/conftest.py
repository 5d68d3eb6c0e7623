"""Hypothesis profiles: `ci` (the default: a few hundred fuzz cases in all, under a minute) and
`long` (`python -m pytest tests/test_spec_fuzz.py --hypothesis-profile=long`: 10^4+ cases)."""

from hypothesis import HealthCheck, Phase, settings

# no `explain` phase: its line tracer allocates and slows down inside the fuzz tests' per-case
# time and memory bounds (tracemalloc counts its allocations)
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True,
               phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
settings.register_profile("ci", max_examples=75, **_common)
settings.register_profile("long", max_examples=3000, **_common)
settings.load_profile("ci")
