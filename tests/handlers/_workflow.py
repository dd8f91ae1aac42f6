"""Tiny multimodal data, networks and trainers shared by the handler tests (and the torchrun script)."""

from __future__ import annotations

import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.inferers import SimpleInferer
from torch import nn

from monai_multifair.handlers import MultimodalPrepareBatch
from monai_multifair.networks import MultimodalFusionClassifier

MODALITIES = ("img", "txt")
NUM_GROUPS = 3


class TinyEncoder(nn.Sequential):
    """``Linear -> Tanh`` with ``out_features`` (what the modulator reads)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(nn.Linear(in_features, out_features), nn.Tanh())
        self.out_features = out_features


def make_records(n: int = 48, seed: int = 0) -> list[dict]:
    """Records with a label signal in both modalities; the image is uninformative for group 1."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    groups = torch.arange(n) % NUM_GROUPS
    img = torch.randn(n, 6, generator=g) + (labels * (groups != 1)).unsqueeze(1) * 1.0
    txt = torch.randn(n, 4, generator=g) + labels.unsqueeze(1) * 0.7
    return [
        {
            "img": img[i],
            "txt": txt[i],
            "label": labels[i],
            "group": groups[i],
            "present": torch.tensor([True, True]),
        }
        for i in range(n)
    ]


def make_net(seed: int = 0, **kwargs) -> MultimodalFusionClassifier:
    torch.manual_seed(seed)
    options = {
        "num_classes": 2,
        "fusion_dim": 8,
        "num_heads": 2,
        "num_layers": 1,
        "dropout": 0.0,
        "head_hidden": 6,
    }
    options.update(kwargs)
    return MultimodalFusionClassifier({"img": TinyEncoder(6, 5), "txt": TinyEncoder(4, 3)}, **options)


def make_loader(records: list[dict], batch_size: int = 12, sampler=None) -> DataLoader:
    return DataLoader(Dataset(records), batch_size=batch_size, shuffle=False, sampler=sampler)


def make_trainer(
    net: nn.Module,
    loader: DataLoader,
    handlers: list,
    max_epochs: int = 2,
    lr: float = 1e-2,
    inferer=None,
    **kwargs,
) -> SupervisedTrainer:
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr)
    return SupervisedTrainer(
        device="cpu",
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=net,
        optimizer=optimizer,
        loss_function=nn.CrossEntropyLoss(),
        prepare_batch=MultimodalPrepareBatch(MODALITIES, label_key="label"),
        inferer=inferer or SimpleInferer(),
        train_handlers=handlers,
        **kwargs,
    )
