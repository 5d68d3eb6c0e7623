"""Generated modules compute what the reference implementations compute, with the same weights.

Hugging Face models are built from Config objects with random weights (no downloads), every
parameter perturbed so that a swapped bias or a missed LayerNorm shows; graphspec.weights maps
them into the generated module (and back); outputs agree within 1e-4 in fp32. Small configs keep
this fast; Swin-T runs once at full size.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from graphspec.codegen import emit, load

import graphspec
from graphspec.weights import from_graphspec, to_graphspec

transformers = pytest.importorskip("transformers")
TOL = 1e-4


# Unfused IR (explicit matmul, softmax) and the default pipeline (fused attention through
# F.scaled_dot_product_attention, one qkv projection); every test runs on both.
PASSES = ["none", "default"]


class Built:
    """A spec lowered, passed and generated: `.graph` names the parameters, `.net` runs."""

    def __init__(self, m, passes):
        self.spec, self.graph = m.spec, m.graph
        if passes != "none":
            from graphspec.passes import run_pipeline

            self.graph, _ = run_pipeline(m.graph, passes)
        gen = emit(self.graph, self.spec)
        self.source = gen.source
        self.net = getattr(load(gen.source), gen.class_name)().eval()

    def to_torch(self):
        return self.net


def perturbed(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()


def loaded(m, hf, family=None, partial=False):
    net = m.to_torch().eval()
    sd = to_graphspec(hf, m.graph, family, partial=partial)
    missing = net.load_state_dict(sd, strict=not partial)
    return net, missing


def close(a, b, tol=TOL):
    err = (a - b).abs().max().item()
    assert err < tol, f"max |diff| = {err:.3g}"
    return err


def swin_pair(overrides, cfg, passes):
    m = Built(graphspec.load("swin_t", overrides), passes)
    hf = perturbed(transformers.SwinForImageClassification(transformers.SwinConfig(**cfg)))
    return m, hf


SMALL_SWIN = (["img_size=64", "C=32", "M=4", "classes=10", "encoder.depths=[2, 2]", "encoder.heads=[2, 4]"],
              dict(image_size=64, patch_size=4, num_channels=3, embed_dim=32, depths=[2, 2], num_heads=[2, 4],
                   window_size=4, mlp_ratio=4.0, qkv_bias=True, hidden_act="gelu", drop_path_rate=0.1,
                   layer_norm_eps=1e-5, num_labels=10))


@pytest.mark.parametrize("passes", PASSES)
def test_swin_small_matches_hf(passes):
    """Shifted windows, masks, relative position bias, patch merging (img 64, window 4, depths
    [2, 2], embed 32) against transformers' Swin, both ways."""
    torch.manual_seed(0)
    m, hf = swin_pair(*SMALL_SWIN, passes)
    net, _ = loaded(m, hf)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        close(net(x), hf(pixel_values=x).logits)
        back = from_graphspec(net.state_dict(), m.graph, "swin", like=hf.state_dict())
        hf2 = transformers.SwinForImageClassification(transformers.SwinConfig(**SMALL_SWIN[1])).eval()
        r = hf2.load_state_dict(back, strict=False)
        assert not r.unexpected_keys and all("index" in k or "mask" in k for k in r.missing_keys)
        close(hf2(pixel_values=x).logits, net(x))


@pytest.mark.parametrize("passes", PASSES)
def test_swin_t_full_size_matches_hf(passes):
    """Swin-T as published (224, window 7, the last stage one window without shift), batch 1."""
    torch.manual_seed(0)
    m, hf = swin_pair([], dict(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
                               num_heads=[3, 6, 12, 24], window_size=7, num_labels=1000), passes)
    net, _ = loaded(m, hf)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        close(net(x), hf(pixel_values=x).logits)


@pytest.mark.parametrize("passes", PASSES)
def test_vit_small_matches_hf(passes):
    torch.manual_seed(0)
    m = Built(graphspec.load("vit_b16", ["img_size=32", "patch=8", "D=64", "L=2", "h=4", "classes=10"]), passes)
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=256, hidden_act="gelu",
                                 layer_norm_eps=1e-6, qkv_bias=True, num_labels=10)
    hf = perturbed(transformers.ViTForImageClassification(cfg))
    net, _ = loaded(m, hf)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        close(net(x), hf(pixel_values=x).logits)
        back = from_graphspec(net.state_dict(), m.graph, "vit", like=hf.state_dict())
        assert set(back) == set(hf.state_dict())


@pytest.mark.parametrize("passes", PASSES)
def test_bert_small_matches_hf(passes):
    """Post-LN blocks, exact (erf) GELU, learned positions and token types, the pooler; eval, no
    attention mask."""
    torch.manual_seed(0)
    m = Built(graphspec.load("bert_base", ["vocab=100", "H=64", "L=2", "A=4", "max_len=64", "seq_len=16"]), passes)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=256, max_position_embeddings=64, type_vocab_size=2,
                                  hidden_act="gelu", layer_norm_eps=1e-12)
    hf = perturbed(transformers.BertModel(cfg))
    assert "self.pos = nn.Embedding(64, dim)" in m.source  # 64 positions, width 64: not (dim, dim)
    net, _ = loaded(m, hf)
    ids = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        hidden, pooled = net(ids)
        out = hf(input_ids=ids)
        close(hidden, out.last_hidden_state, 1e-5)
        close(pooled, out.pooler_output, 1e-5)
        back = from_graphspec(net.state_dict(), m.graph, "bert", like=hf.state_dict())
        assert set(back) == set(hf.state_dict())


@pytest.mark.parametrize("passes", PASSES)
def test_bert_token_type_ids_match_hf(passes):
    """The generated forward takes token_type_ids (default zeros, as BertModel's); sentence-pair
    segments give HF's outputs, and None gives what explicit zeros give."""
    torch.manual_seed(0)
    m = Built(graphspec.load("bert_base", ["vocab=100", "H=64", "L=2", "A=4", "max_len=32", "seq_len=16"]), passes)
    assert "def forward(self, input_ids, token_type_ids=None):" in m.source
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=256, max_position_embeddings=32, type_vocab_size=2,
                                  hidden_act="gelu", layer_norm_eps=1e-12)
    hf = perturbed(transformers.BertModel(cfg))
    net, _ = loaded(m, hf)
    ids = torch.randint(0, 100, (2, 16))
    types = (torch.arange(16) >= torch.tensor([[5], [11]])).long()  # segment B from token 5 / 11
    with torch.no_grad():
        hidden, pooled = net(ids, types)
        out = hf(input_ids=ids, token_type_ids=types)
        close(hidden, out.last_hidden_state, 1e-5)
        close(pooled, out.pooler_output, 1e-5)
        zeros = net(ids, torch.zeros_like(ids))[0]
        assert torch.equal(net(ids)[0], zeros)
        assert (hidden - zeros).abs().max() > 0.1  # the segments matter


@pytest.mark.parametrize("passes", PASSES)
def test_gpt2_small_matches_hf(passes):
    """Pre-LN, causal, gelu_new (the tanh approximation), Conv1D weights stored transposed with q,
    k, v packed in c_attn, the tied head."""
    torch.manual_seed(0)
    m = Built(graphspec.load("gpt2", ["vocab=100", "d=64", "L=2", "h=4", "n_ctx=64", "seq_len=16"]), passes)
    cfg = transformers.GPT2Config(vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                                  activation_function="gelu_new", layer_norm_epsilon=1e-5,
                                  bos_token_id=0, eos_token_id=0)
    hf = perturbed(transformers.GPT2LMHeadModel(cfg))
    net, _ = loaded(m, hf)
    ids = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        close(net(ids), hf(input_ids=ids).logits)
        close(net(ids[:, :7]), hf(input_ids=ids[:, :7]).logits)  # the generated module takes any length
        back = from_graphspec(net.state_dict(), m.graph, "gpt2", like=hf.state_dict())
        hf2 = transformers.GPT2LMHeadModel(cfg).eval()
        hf2.load_state_dict(back, strict=False)
        close(hf2(input_ids=ids).logits, net(ids))


@pytest.mark.parametrize("passes", PASSES)
def test_gpt2_medium_position_table_matches_hf(passes):
    """GPT-2 medium's widths (1024 positions, n_embd 1024, 16 heads; 2 layers, vocab 100): the
    position table is written `nn.Embedding(1024, dim)`, not `(dim, dim)` (issue 14), and HF's
    weights give HF's logits."""
    torch.manual_seed(0)
    m = Built(graphspec.load("gpt2", ["vocab=100", "d=1024", "L=2", "h=16", "n_ctx=1024", "seq_len=16"]), passes)
    assert "self.pos = nn.Embedding(1024, dim)" in m.source
    cfg = transformers.GPT2Config(vocab_size=100, n_embd=1024, n_layer=2, n_head=16, n_positions=1024,
                                  activation_function="gelu_new", layer_norm_epsilon=1e-5,
                                  bos_token_id=0, eos_token_id=0)
    hf = perturbed(transformers.GPT2LMHeadModel(cfg))
    net, _ = loaded(m, hf)
    assert net.embed.pos.weight.shape == (1024, 1024)
    ids = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        close(net(ids), hf(input_ids=ids).logits, 1e-5)


@pytest.mark.parametrize("passes", PASSES)
def test_transformer_small_matches_torch_nn_transformer(passes):
    """torch.nn.Transformer has no embeddings, no positional encoding and no output projection, and
    it ends its encoder and decoder with a LayerNorm each. So the spec gets those final norms
    (`--set encoder.final_norm=true --set decoder.final_norm=true`), the stack's weights come from
    nn.Transformer (in_proj_weight split into q, k, v), and nn.Transformer is fed our embeddings
    (token embedding · √d + sinusoids) and followed by our tied projection: the comparison covers
    the whole encoder-decoder stack, masks and all."""
    torch.manual_seed(0)
    m = Built(graphspec.load("transformer_base", ["d_model=64", "h=4", "d_ff=128", "N=2", "vocab=100", "seq_len=12",
                                                  "encoder.final_norm=true", "decoder.final_norm=true"]), passes)
    ref = perturbed(torch.nn.Transformer(d_model=64, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                         dim_feedforward=128, dropout=0.1, batch_first=True))
    net = m.to_torch().eval()
    sd = to_graphspec(ref, m.graph, partial=True)
    assert not [k for k in net.state_dict() if k not in sd and not k.startswith("embed.")]
    net.load_state_dict(sd, strict=False)
    src, tgt = torch.randint(0, 100, (2, 12)), torch.randint(0, 100, (2, 12))
    with torch.no_grad():
        mask = torch.nn.Transformer.generate_square_subsequent_mask(12)
        y = ref(net.embed(src), net.embed(tgt), tgt_mask=mask, tgt_is_causal=True)
        close(net(src, tgt), F.linear(y, net.embed.tokens.weight))
        back = from_graphspec(net.state_dict(), m.graph, "torch_transformer", like=ref.state_dict(), partial=True)
        assert set(back) == set(ref.state_dict())
        assert all(torch.equal(back[k], v) for k, v in ref.state_dict().items())


class DropoutCalls(torch.overrides.TorchFunctionMode):
    """Counts F.dropout calls (nn.Dropout's and functional ones) and dropout inside attention."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout or (func is F.scaled_dot_product_attention and kwargs.get("dropout_p")):
            self.calls += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("passes, impl", [("none", "eager"), ("default", "sdpa")])
def test_gpt2_dropout_sites_are_hf_gpt2s(passes, impl, tmp_path):
    """Training mode: GPT-2's dropout sites are HF's GPT2LMHeadModel's (embeddings, attention
    probabilities, after c_proj of attention and of the MLP; none between gelu and c_proj), so the
    same torch seed gives the same logits. The MLP once had a dropout after its activation: that
    spelling, `mlp(4*d, gelu_tanh, drop=0.1)`, is the control (one call more per block, other logits)."""
    cfg = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                  activation_function="gelu_new", layer_norm_epsilon=1e-5,
                                  bos_token_id=0, eos_token_id=0, attn_implementation=impl)
    hf = perturbed(transformers.GPT2LMHeadModel(cfg)).train()
    inner = (graphspec.SPECS_DIR / "gpt2.yaml").read_text().replace(
        "d_ff: 4*d, norm: pre, act: gelu_tanh,", 'mlp: "mlp(4*d, gelu_tanh, drop=0.1)", norm: pre,')
    (tmp_path / "gpt2_inner.yaml").write_text(inner)
    ids = torch.randint(0, 100, (2, 16))
    logits, calls = {}, {}
    for name, spec in (("hf", None), ("gpt2", "gpt2"), ("inner", tmp_path / "gpt2_inner.yaml")):
        net = hf
        if spec is not None:
            m = Built(graphspec.load(spec, ["vocab=100", "d=32", "L=2", "h=4", "n_ctx=32", "seq_len=16"]), passes)
            net, _ = loaded(m, hf)
            net.train()
        torch.manual_seed(3)
        with DropoutCalls() as count:
            out = net(ids) if spec is not None else net(input_ids=ids).logits
        logits[name], calls[name] = out, count.calls
    # embeddings 1 + 2 blocks x (attention probabilities, attention output, MLP output) = 7
    assert calls == {"hf": 7, "gpt2": 7, "inner": 9}
    close(logits["gpt2"], logits["hf"], 1e-5)
    assert (logits["inner"] - logits["hf"]).abs().max() > 0.1


def test_mlp_dropout_follows_each_familys_reference():
    """Dropout inside the MLP only where the reference has it: torch.nn.Transformer's and DETR's
    `linear2(dropout(activation(linear1(x))))` (6 + 6 layers each), none in GPT-2 / GPT (HF's
    GPT2MLP, OpenAI GPT's MLP: dropout after c_proj, the residual branch's)."""
    from graphspec.spec import SpecError

    inner = {s: sum(n.op == "dropout" and ".mlp." in n.name for n in graphspec.load(s).graph)
             for s in ("transformer_base", "detr_r50", "gpt2", "gpt")}
    assert inner == {"transformer_base": 12, "detr_r50": 12, "gpt2": 0, "gpt": 0}
    with pytest.raises(SpecError, match="the experts have no dropout inside"):
        graphspec.load("mixtral_8x7b", ["decoder.mlp=moe(8, 2, expert=glu(64, silu, drop=0.1))"])
