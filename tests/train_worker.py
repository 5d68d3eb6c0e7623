"""Run by tests/test_train.py under `torchrun --nproc-per-node 2` (gloo, CPU): trains each
(spec, mode) of argv for three steps with a checkpoint at step 2, resumes from it for step 3,
and writes the losses (rank 0) to the JSON file argv[1]."""

import json
import sys
from pathlib import Path

from graphspec.train import TrainConfig, train


def main(out: str, ckpt_root: str, cases: str, gpt_spec: str) -> None:
    import torch.distributed as dist

    SPECS["gpt"] = (gpt_spec, [])

    results = {}
    for case in cases.split(","):
        spec, mode = case.split(":")
        spec_path, sets = SPECS[spec]
        ckpt = str(Path(ckpt_root) / f"{spec}-{mode}")
        cfg = TrainConfig(steps=3, batch=4, parallel=mode, ckpt_every=2, ckpt_dir=ckpt, seed=1)
        losses = train(spec_path, cfg, overrides=sets, log=None)
        resumed = train(spec_path, TrainConfig(steps=3, batch=4, parallel=mode, ckpt_dir=ckpt, resume=True, seed=1),
                        overrides=sets, log=None)
        results[case] = {"losses": losses, "resumed": resumed}
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(results))
    dist.destroy_process_group()


SWIN = ["img_size=32", "C=24", "M=2", "classes=10", "drop_path=0", "encoder.depths=[2,2]", "encoder.heads=[3,6]"]
SPECS = {  # small, without dropout (a rank's dropout draws differ from one process's); gpt: argv
    "swin": ("swin_t", SWIN),
}

if __name__ == "__main__":
    main(*sys.argv[1:])
