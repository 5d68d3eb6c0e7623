"""Small specs shared by tests/test_train.py, tests/test_parallel.py and tests/train_worker.py
(one place each): a tiny GPT, a ViT-like model of one block (no repeated structure), and a
2-stage Swin as `--set` overrides, all without dropout (a rank's dropout draws differ from one
process's)."""

TINY_GPT = """\
name: tiny_gpt
vars: vocab=256, d=32, L=2, h=4, n_ctx=64, seq_len=16, batch=1
input: tokens(seq_len)
embed: tokens(vocab, dim=d, pos=learned(n_ctx))
decoder×L: {dim: d, heads: h, d_ff: 4*d, norm: pre, act: gelu_tanh, eps: 1e-5, final_norm: true}
head: lm(tied=true)
"""
FLAT = """\
name: flat
vars: img_size=32, classes=10, batch=1
input: image(img_size)
embed: patches(8, dim=32, norm=true)
encoder: {dim: 32, heads: 2}
head: classifier(classes, pool=mean)
"""
SWIN = ["img_size=32", "C=24", "M=2", "classes=10", "drop_path=0", "encoder.depths=[2,2]", "encoder.heads=[3,6]"]
