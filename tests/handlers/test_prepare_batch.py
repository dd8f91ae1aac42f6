"""MultimodalPrepareBatch: what MONAI engines pass to the network (groups for the demographic token)."""

from __future__ import annotations

import pytest
import torch
from _workflow import MODALITIES, make_loader, make_net, make_records
from ignite.engine import Events
from monai.engines import SupervisedEvaluator
from monai.utils.enums import CommonKeys as Keys

from monai_multifair.errors import MultiFairError
from monai_multifair.handlers import MultimodalPrepareBatch


def test_split_of_a_batch():
    batch = next(iter(make_loader(make_records(n=8), batch_size=8)))
    prepare = MultimodalPrepareBatch(MODALITIES, group_key="group", presence_key="present")
    inputs, labels, args, kwargs = prepare(batch, torch.device("cpu"), dtype=torch.float64)
    assert list(inputs) == list(MODALITIES) and args == ()
    assert inputs["img"].dtype == torch.float64  # `Tensor.to` kwargs apply to the modality inputs only
    torch.testing.assert_close(labels, batch["label"])
    torch.testing.assert_close(kwargs["groups"], batch["group"].long())
    assert kwargs["present"].dtype == torch.bool and kwargs["present"].shape == (8, 2)
    assert set(MultimodalPrepareBatch(MODALITIES)(batch)[3]) == set()

    with pytest.raises(MultiFairError, match="`label_key`='y'.*keys: group, img, label, present, txt"):
        MultimodalPrepareBatch(MODALITIES, label_key="y")(batch)
    with pytest.raises(MultiFairError, match="`modalities`='image'.*did you mean 'img'"):
        MultimodalPrepareBatch(["image"])(batch)
    with pytest.raises(MultiFairError, match="non-empty list"):
        MultimodalPrepareBatch("img")


def test_evaluator_passes_groups_to_a_demographic_token_network():
    records = make_records(n=20)
    net = make_net(demographic_token=True, num_groups=3).eval()
    outputs = []
    evaluator = SupervisedEvaluator(
        device="cpu",
        val_data_loader=make_loader(records, batch_size=10),
        network=net,
        prepare_batch=MultimodalPrepareBatch(MODALITIES, group_key="group"),
        decollate=False,
    )
    evaluator.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output[Keys.PRED])
    )
    evaluator.run()
    with torch.no_grad():
        expected = net(
            {m: torch.stack([r[m] for r in records]) for m in MODALITIES},
            groups=torch.stack([r["group"] for r in records]),
        )
    torch.testing.assert_close(torch.cat(outputs), expected)

    without_groups = SupervisedEvaluator(
        device="cpu",
        val_data_loader=make_loader(records, batch_size=10),
        network=net,
        prepare_batch=MultimodalPrepareBatch(MODALITIES),
    )
    with pytest.raises(MultiFairError, match="needs the group attribute"):
        without_groups.run()
