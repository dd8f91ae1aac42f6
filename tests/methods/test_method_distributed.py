"""Two-process torchrun (gloo, CPU): the methods' statistics are identical on every rank and equal to one
process on the concatenated batch; the replicas stay identical."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("method_ddp_worker.py")


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("method", ["groupdro", "fis", "resampling"])
def test_two_process_method_matches_one_process(tmp_path, method, torchrun, run_worker):
    torchrun(WORKER, ["--out", tmp_path / "ddp", "--method", method], cwd=tmp_path)
    run_worker(WORKER, ["--out", tmp_path / "single", "--method", method], cwd=tmp_path)
    rank0, rank1 = torch.load(tmp_path / "ddp.rank0.pt"), torch.load(tmp_path / "ddp.rank1.pt")
    single = torch.load(tmp_path / "single.rank0.pt")
    for name, value in rank0["params"].items():
        torch.testing.assert_close(
            value, rank1["params"][name], rtol=0, atol=0, msg=f"replicas differ in {name}"
        )
        # the weights are float32 (as under AMP): all-reduced sums differ from one process in rounding only
        torch.testing.assert_close(
            value, single["params"][name], rtol=1e-6, atol=1e-7, msg=f"{name} vs one process"
        )
    for step, (s0, s1, ref) in enumerate(zip(rank0["stats"], rank1["stats"], single["stats"], strict=True)):
        for key in ref:
            # a group absent from the batch has an undefined (NaN) group weight on every rank alike
            torch.testing.assert_close(
                s0[key], s1[key], rtol=0, atol=0, equal_nan=True, msg=f"step {step} {key}: ranks differ"
            )
            torch.testing.assert_close(
                s0[key], ref[key], rtol=1e-6, atol=1e-7, equal_nan=True, msg=f"step {step} {key}"
            )
    if method == "groupdro":
        assert not torch.allclose(single["stats"][-1]["weight"], torch.full((3,), 1 / 3))  # the weights moved
    # the two ranks saw disjoint shares whose union is the one-process batch, step by step
    for a, b, whole in zip(rank0["seen"], rank1["seen"], single["seen"], strict=True):
        assert sorted(torch.cat([a, b]).tolist()) == sorted(whole.tolist())
