"""Two-process torchrun (gloo, CPU): a SupervisedTrainer with MultiFairHandler keeps replicas identical."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _workflow import make_net, make_records
from sklearn.metrics import roc_auc_score
from test_fairness_evaluation_handler import predictions

WORKER = Path(__file__).with_name("ddp_trainer_worker.py")


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("modulate", ["gradient", "update"])
def test_two_process_trainer_replicas_identical(tmp_path, torchrun, modulate):
    """Both modes; ``update`` also scales each encoder's update through the trainer's optimizer hooks."""
    torchrun(WORKER, ["--out", tmp_path, "--modulate", modulate], cwd=tmp_path)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert rank0["steps"] == rank1["steps"] == 8
    for part in ("network", "modulator"):
        assert rank0[part].keys() == rank1[part].keys()
        for key, value in rank0[part].items():
            torch.testing.assert_close(
                value, rank1[part][key], rtol=0, atol=0, equal_nan=True, msg=f"{part}.{key}"
            )
    assert int(rank0["modulator"]["steps"]) == 8
    # every rank computed the same statistics from the gathered batch, and published them
    assert (
        rank0["metrics"].keys() == rank1["metrics"].keys()
        and "multifair/modality_scale/img" in rank0["metrics"]
    )
    assert ("multifair/update_scale/img" in rank0["metrics"]) == (modulate == "update")
    for key, value in rank0["metrics"].items():
        assert value == rank1["metrics"][key] or (
            value != value and rank1["metrics"][key] != rank1["metrics"][key]
        )
    # the fairness handler gathered both uneven shards: every rank reports the metrics of all 45 samples
    assert {rank0["local_eval_samples"], rank1["local_eval_samples"]} == {23, 22}
    net = make_net()
    net.load_state_dict(rank0["network"])
    records = make_records(n=45, seed=7)
    p, y, g = predictions(net, records)
    auc = roc_auc_score(y, p)
    group_auc = [roc_auc_score(y[g == k], p[g == k]) for k in range(3)]
    for rank in (rank0, rank1):
        assert rank["fairness"]["auc"] == pytest.approx(auc, abs=1e-6)
        assert rank["fairness"]["es_auc"] == pytest.approx(
            auc / (1 + sum(abs(auc - v) for v in group_auc)), abs=1e-6
        )
        for k in range(3):
            assert rank["fairness"][f"group_auc/{k}"] == pytest.approx(group_auc[k], abs=1e-6)
    # the guides did train (and so would have diverged without the all-gather and the broadcast)
    assert rank0["modulator"]["guides.img.output.weight"].abs().sum() > 0
