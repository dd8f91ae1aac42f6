"""Two-process CPU DDP (gloo): identical replicas, and coefficients equal to the one-process run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize(
    ("fairness_weight", "modulate"), [(0.0, "gradient"), (0.5, "gradient"), (0.0, "update")]
)
def test_two_process_ddp_matches_one_process(tmp_path, fairness_weight, modulate, torchrun, run_worker):
    fw = ["--fairness-weight", str(fairness_weight), "--modulate", modulate]
    torchrun(WORKER, ["--out", tmp_path / "ddp", *fw], cwd=tmp_path)
    run_worker(WORKER, ["--out", tmp_path / "single", *fw], cwd=tmp_path)
    rank0 = torch.load(tmp_path / "ddp.rank0.pt")
    rank1 = torch.load(tmp_path / "ddp.rank1.pt")
    single = torch.load(tmp_path / "single.rank0.pt")

    # Replicas stay identical: network parameters and guide heads.
    for part in ("params", "guides"):
        for name, value in rank0[part].items():
            torch.testing.assert_close(value, rank1[part][name], rtol=0, atol=0, msg=f"{part}.{name} differs")

    # Every rank computed the coefficients of the concatenated batch, step by step.
    # With the fairness loss on, each rank's loss is over its local batch (the surrogate needs the graph),
    # so parameters, and from step 1 on the features, differ from the one-process run by design.
    comparable = len(single["stats"]) if fairness_weight == 0.0 else 1
    for step, (s0, s1, ref) in enumerate(zip(rank0["stats"], rank1["stats"], single["stats"])):
        for key in (
            "modality_scale",
            "group_factor",
            "gate",
            "guide_auc",
            "guide_group_auc",
            "fused_group_auc",
            *(["update_scale"] if modulate == "update" else []),
        ):
            torch.testing.assert_close(
                s0[key], s1[key], equal_nan=True, msg=f"step {step} {key}: ranks differ"
            )
            if step >= comparable:
                continue
            torch.testing.assert_close(
                s0[key].double(),
                ref[key].double(),
                equal_nan=True,
                atol=1e-6,
                rtol=1e-6,
                msg=f"step {step} {key}: DDP differs from one process",
            )
    assert any(bool(s["gate"]) for s in single["stats"]), (
        "the gate never opened: the test would not see group factors"
    )
    if fairness_weight == 0.0:
        # Without the (local-batch) fairness loss, DDP's averaged gradient equals the global-batch one.
        for name, value in single["params"].items():
            torch.testing.assert_close(rank0["params"][name], value, atol=1e-8, rtol=1e-6)
