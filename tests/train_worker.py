"""Run by tests/test_train.py under `torchrun --nproc-per-node 2` (gloo, CPU): trains each
(spec, mode) of argv for three steps with a checkpoint at step 2, resumes from it for step 3,
and writes the losses (rank 0) to the JSON file argv[1]."""

import json
import os
import sys
from pathlib import Path

from graphspec.train import TrainConfig, train


def main(out: str, ckpt_root: str, cases: str, gpt_spec: str) -> None:
    import torch.distributed as dist

    SPECS["gpt"] = (gpt_spec, [])

    results = {}
    for case in cases.split(","):
        spec, mode, *more = case.split(":")  # gpt:fsdp:block — activation checkpointing; :none:sharded — init
        spec_path, sets = SPECS[spec]
        ckpt = str(Path(ckpt_root) / case.replace(":", "-"))
        ac, init = (more + ["none", "full"][len(more):])[:2]
        opts = {"parallel": mode, "seed": 1, "checkpoint": ac, "init": init}
        losses = train(spec_path, TrainConfig(steps=3, batch=4, ckpt_every=2, ckpt_dir=ckpt, **opts),
                       overrides=sets, log=None)
        resumed = train(spec_path, TrainConfig(steps=3, batch=4, ckpt_dir=ckpt, resume=True, **opts),
                        overrides=sets, log=None)
        results[case] = {"losses": losses, "resumed": resumed}
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()
    # NB: about 1 launch in 4 of all five cases, a rank aborted at interpreter exit, after this
    # point ("terminate called without an active exception": a C++ thread torn down unjoined;
    # cause not found). Everything is written and the group destroyed: leave without teardown.
    sys.stdout.flush()
    os._exit(0)


SWIN = ["img_size=32", "C=24", "M=2", "classes=10", "drop_path=0", "encoder.depths=[2,2]", "encoder.heads=[3,6]"]
SPECS = {  # small, without dropout (a rank's dropout draws differ from one process's); gpt: argv
    "swin": ("swin_t", SWIN),
}

if __name__ == "__main__":
    main(*sys.argv[1:])
