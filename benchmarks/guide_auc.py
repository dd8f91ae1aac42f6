"""Do MultiFair's guide heads measure their modality? Held-out guide AUC vs a unimodal model trained alone.

The modality coefficient ``B_m`` is computed from the guide heads' AUCs, so a guide that has not learned
its modality drives the method with noise. On the embedded demo cohort (the demo network: small CNN on
the fundus image, bag-of-words on the note, attention fusion; 8 epochs of batch 64, AdamW 1e-3) this
script trains MultiFair's ``default`` preset once per guide setting and reports, per modality:

- the guide head's AUC on the held-out test split at the end of training (features of the trained
  encoder, guide in eval mode), and its mean batch AUC over training (what the coefficient sees);
- the test AUC of a **unimodal model trained alone** on that modality (the same encoder + a linear head,
  same budget and optimizer), the target the guide should come within 0.05 of.

    python benchmarks/guide_auc.py                                  # guide_lr 1e-5 (paper) .. 3e-3
    python benchmarks/guide_auc.py --guide-lrs 1e-5 1e-3 --seeds 0 1 --n-patients 1500 --epochs 4

Writes ``guide_auc.json`` and ``guide_auc.md`` to ``--output``. Uses ``effectiveness.py``'s cohort and
network so that the numbers describe the same model.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from effectiveness import Budget, build_network, load_cohort
from sklearn.metrics import roc_auc_score
from torch import nn

from monai_multifair.core import MultiFairConfig, build_modulator
from monai_multifair.plugins import create_encoder

MODALITIES = ("fundus", "notes")


def encoder(name: str) -> nn.Module:
    if name == "fundus":
        return create_encoder("small-cnn-2d", in_channels=1, channels=[16, 32, 64])
    return create_encoder("bow-text", vocab_size=8192, embedding_dim=64, max_length=128)


def minibatches(n: int, size: int, seed: int, epochs: int):
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=order)
        for start in range(0, n - size + 1, size):
            yield perm[start : start + size]


@torch.no_grad()
def features(module: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    module.eval()
    return torch.cat([module(x[s : s + batch]).flatten(1) for s in range(0, x.shape[0], batch)])


def unimodal_auc(data, modality: str, seed: int, budget: Budget) -> float:
    torch.manual_seed(seed)
    enc = encoder(modality)
    head = nn.Linear(enc.out_features, 2)
    net = nn.Sequential(enc, head)
    opt = torch.optim.AdamW(net.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    train = data["train"]
    for idx in minibatches(train["label"].shape[0], budget.batch_size, seed, budget.epochs):
        net.train()
        loss = F.cross_entropy(net(train[modality][idx]), train["label"][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    test = data["test"]
    with torch.no_grad():
        scores = torch.softmax(head(features(enc, test[modality])), dim=1)[:, 1]
    return float(roc_auc_score(test["label"].numpy(), scores.numpy()))


def multifair_guides(data, seed: int, budget: Budget, guide: dict) -> dict[str, dict[str, float]]:
    from effectiveness import ARMS

    torch.manual_seed(seed)
    train = data["train"]
    num_groups = int(train["group"].max()) + 1
    net = build_network(ARMS["baseline"], num_groups)
    opt = torch.optim.AdamW(net.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    config = MultiFairConfig(preset="default", validate_args=False, **guide)
    mod = build_modulator(net.encoders, 2, num_groups, fused_head=net.fused_head, config=config)
    mod.attach_optimizer(opt)
    seen = {m: [] for m in MODALITIES}
    for idx in minibatches(train["label"].shape[0], budget.batch_size, seed, budget.epochs):
        net.train()
        inputs = {m: train[m][idx] for m in MODALITIES}
        labels, groups = train["label"][idx], train["group"][idx]
        logits = net(inputs)
        loss = F.cross_entropy(logits, labels) + mod(logits, labels, groups)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        auc = mod.stats()["guide_auc"]
        for i, m in enumerate(MODALITIES):
            seen[m].append(float(auc[i]))
    test = data["test"]
    out = {}
    for m in MODALITIES:
        head = mod.guides[m].eval()
        with torch.no_grad():
            scores = torch.softmax(head(features(net.encoders[m], test[m])), dim=1)[:, 1]
        out[m] = {
            "guide_test_auc": float(roc_auc_score(test["label"].numpy(), scores.numpy())),
            "guide_train_batch_auc_mean": float(np.nanmean(seen[m])),
            "guide_train_batch_auc_last_epoch": float(np.nanmean(seen[m][-len(seen[m]) // budget.epochs :])),
        }
    mod.remove_hooks()
    mod.detach_optimizer()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guide-lrs", nargs="+", type=float, default=[1e-5, 1e-4, 1e-3, 3e-3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--n-patients", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("runs/guide_auc"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = Budget(n_patients=args.n_patients, epochs=args.epochs)
    data = load_cohort(budget, data_seed=0)
    t0 = time.time()
    rows: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        for m in MODALITIES:
            rows.setdefault(f"unimodal/{m}", {}).setdefault("test_auc", []).append(
                unimodal_auc(data, m, seed, budget)
            )
        for lr in args.guide_lrs:
            result = multifair_guides(data, seed, budget, {"guide_lr": lr})
            for m, values in result.items():
                for key, value in values.items():
                    rows.setdefault(f"guide_lr={lr:g}/{m}", {}).setdefault(key, []).append(value)
        print(json.dumps({k: {kk: vv[-1] for kk, vv in v.items()} for k, v in rows.items()}), flush=True)
    summary = {k: {kk: statistics.mean(vv) for kk, vv in v.items()} for k, v in rows.items()}
    meta = {
        "command": "python benchmarks/guide_auc.py --guide-lrs "
        + " ".join(f"{x:g}" for x in args.guide_lrs)
        + f" --seeds {' '.join(map(str, args.seeds))} --n-patients {args.n_patients} --epochs {args.epochs}",
        "machine": f"{platform.system()} {platform.machine()}, {args.threads} threads",
        "torch": torch.__version__,
        "seconds": round(time.time() - t0, 1),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "guide_auc.json").write_text(
        json.dumps({"meta": meta, "per_seed": rows, "mean": summary}, indent=2)
    )
    lines = [
        "| guide setting | modality | held-out guide AUC | unimodal model AUC | gap | mean batch guide AUC in training |",
        "|---|---|---|---|---|---|",
    ]
    for key, values in summary.items():
        if key.startswith("unimodal/"):
            continue
        setting, m = key.split("/")
        target = summary[f"unimodal/{m}"]["test_auc"]
        lines.append(
            f"| {setting} | {m} | {values['guide_test_auc']:.3f} | {target:.3f} | "
            f"{values['guide_test_auc'] - target:+.3f} | {values['guide_train_batch_auc_mean']:.3f} |"
        )
    (args.output / "guide_auc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
