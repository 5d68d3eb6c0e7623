"""CPVT/Twins' position encoding generator (`pos: conditional`) in stages of any depth.

The PEG runs after the first block of each stage, so a stage reads `self.blocks[0](x)`, the PEG,
then `for blk in self.blocks[1:]` — the same class for stages of 1, 2 or 3 blocks (Twins-PCPVT:
3-4-6-3). Before, a one-block stage or stages of different depths made codegen raise ("a loop
needs one class"). Checked: the generated module equals the IR interpreter (eval rules, a
separate implementation) and the PEG of the one-block stage is x + DWConv3×3(x) on the token map
written out with F.conv2d (Chu et al. 2021, arXiv:2102.10882, §3.2).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from graphspec.codegen import emit, load

import graphspec
from graphspec.interpret import init_params, random_inputs, run

SPEC = """\
name: peg_depths
input: image(32, batch=2)
embed: patches(4, dim=16, norm=true, pos=conditional)
encoder:
  dim: [16, 32]
  depths: DEPTHS
  heads: [1, 2]
  downsample: patch_embed(2, stride=2)
head: classifier(10, pool=mean)
"""


def build(tmp_path, depths):
    p = tmp_path / "peg.yaml"
    p.write_text(SPEC.replace("DEPTHS", str(list(depths))))
    m = graphspec.load(p)
    gen = emit(m.graph, m.spec)
    return m, getattr(load(gen.source), gen.class_name)().eval(), gen.source


@pytest.mark.parametrize("depths", [(2, 1), (1, 2), (3, 2), (1, 1)])
def test_stages_of_any_depth_share_one_class_and_compute_the_ir(tmp_path, depths):
    m, net, src = build(tmp_path, depths)
    assert src.count("class Stage(") == 1
    if max(depths) > 1:  # (1, 1): `for blk in self.blocks` over one block, then the PEG
        assert "x = self.pos_block(self.blocks[0](x))" in src and "for blk in self.blocks[1:]:" in src
    params, x = init_params(m.graph, seed=0), random_inputs(m.graph, seed=1)
    net.load_state_dict(params, strict=True)
    ref = next(iter(run(m.graph, x, params).values()))
    with torch.no_grad():
        got = net(*x.values())
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert [len(s.blocks) for s in net.layers] == list(depths)


def test_one_block_stage_peg_is_x_plus_depthwise_conv(tmp_path):
    _, net, _ = build(tmp_path, (2, 1))
    stage = net.layers[1]
    seen = {}
    stage.blocks[0].register_forward_hook(lambda mod, i, o: seen.__setitem__("x", o))
    stage.pos_block.register_forward_hook(lambda mod, i, o: seen.__setitem__("y", o))
    with torch.no_grad():
        net(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
        x = seen["x"]  # B, 4·4 tokens, 32 (the second stage's map is 32/4/2 = 4 × 4)
        conv = stage.pos_block.proj
        fmap = x.transpose(1, 2).reshape(2, 32, 4, 4)
        want = x + F.conv2d(fmap, conv.weight, conv.bias, padding=1, groups=32).flatten(2).transpose(1, 2)
    assert conv.weight.shape == (32, 1, 3, 3)
    torch.testing.assert_close(seen["y"], want, rtol=1e-6, atol=1e-6)
