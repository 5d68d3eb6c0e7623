"""The op registry: every op kind has every facet, and registration refuses duplicates."""

import pytest

from graphspec.ops import HAS_PARAMS, MAC, REGISTRY
from graphspec.ops.registry import op


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_op_has_its_rules(name):
    d = REGISTRY[name]
    assert d.doc, f"{name}: missing docstring (shapes and paper reference)"
    assert callable(d.shape)
    assert d.torch is not None, f"{name}: no torch template"
    if d.has(HAS_PARAMS):
        assert d.params is not None
    if d.has(MAC):
        assert d.macs is not None


def test_registering_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):

        @op("linear")
        class Again:
            def shape(x):
                return x


def test_linear_rules_by_hand():
    d = REGISTRY["linear"]
    # (B=2, N=197, 768) -> 3072: MACs = 2·197·3072·768 = 929,562,624
    out = d.shape((2, 197, 768), out_features=3072)
    assert out == (2, 197, 3072)
    assert d.macs(out, (2, 197, 768)) == 2 * 197 * 3072 * 768 == 929_562_624
    assert d.params((2, 197, 768), out_features=3072) == {"weight": (3072, 768), "bias": (3072,)}
