"""Missing modalities end to end: the data's presence mask reaches the network and the method, and
``trainer.modality_dropout`` drops modalities at random, reproducibly."""

from __future__ import annotations

import numpy as np
import torch
from ignite.engine import Events

from monai_multifair.engine import train
from monai_multifair.engine.modality_dropout import ModalityDropout

FAST = ("evaluation.n_boot=0", "output.report_formats=[]", "trainer.epochs=1")


def test_drop_is_reproducible_keeps_one_modality_and_has_the_rate():
    dropout = ModalityDropout(0.4, seed=3, rank=0)
    present = torch.ones(4000, 3, dtype=torch.bool)
    present[:1000, 2] = False  # missing in the data: never switched back on
    a, b = dropout.drop(present, 7), dropout.drop(present, 7)
    assert torch.equal(a, b) and not torch.equal(a, dropout.drop(present, 8))
    assert not (a & ~present).any()
    assert a.any(dim=1).all()
    # rows with three modalities: 0.4 of the entries, less the rows all three of which were drawn
    # (probability 0.4 ** 3), which keep them: (3 * 0.4 - 3 * 0.4**3) / 3 = 0.336
    rate = 1 - a[1000:].float().mean().item()
    assert abs(rate - 0.336) < 0.02
    assert torch.equal(ModalityDropout(0.0, seed=3).drop(present, 1), present)


class Probe:
    """Records the ``present`` the network receives in each training forward."""

    def __init__(self) -> None:
        self.masks: list[torch.Tensor] = []

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.STARTED, self.hook)

    def hook(self, engine) -> None:
        def record(module, args, kwargs):
            if module.training:
                self.masks.append(kwargs["present"].detach().cpu().clone())

        engine.network.register_forward_pre_hook(record, with_kwargs=True)


def test_mask_reaches_the_network_and_multifair(tiny_config, tmp_path):
    probe = Probe()
    config = tiny_config(*FAST, "trainer.modality_dropout=0.3", "method.name=multifair")
    result = train(config, tmp_path / "a", progress=False, handlers=[probe], stats_interval=1)
    masks = torch.cat(probe.masks)
    assert masks.shape[1] == 2 and masks.any(dim=1).all()
    assert abs(1 - masks.float().mean().item() - 0.21) < 0.07  # (2 * 0.3 - 2 * 0.3**2) / 2 = 0.21
    assert np.isfinite(result.training_stats["loss"].to_numpy()).all()
    # the same seed drops the same modalities: training is reproducible
    again = Probe()
    train(config, tmp_path / "b", progress=False, handlers=[again], stats_interval=1)
    assert all(torch.equal(x, y) for x, y in zip(probe.masks, again.masks))
    # without dropout every sample of the synthetic cohort has both modalities
    full = Probe()
    train(tiny_config(*FAST), tmp_path / "c", progress=False, handlers=[full])
    assert torch.cat(full.masks).all()
