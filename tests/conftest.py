"""Hypothesis profiles: `ci` (the default: a few hundred fuzz cases in all, under a minute) and
`long` (`python -m pytest tests/test_spec_fuzz.py --hypothesis-profile=long`: 10^4+ cases)."""

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("ci", max_examples=75, **_common)
settings.register_profile("long", max_examples=3000, **_common)
settings.load_profile("ci")
