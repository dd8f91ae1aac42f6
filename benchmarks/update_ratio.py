"""Does MultiFair's modality coefficient reach the parameters? Encoder update ratio vs coefficient.

For each encoder ``m`` and step ``t`` the benchmark measures the norm of the parameter update
``||theta_m(t+1) - theta_m(t)||`` of a modulated run and of plain training (cross-entropy only), both
from the same weights on the same batches in one process, and reports the mean over steps
``[warmup, steps)`` of their ratio next to the mean coefficient the modulator applied,
``c_m(t) = mean_i s_{m,i}(t)`` (the batch mean of the per-sample scale
``rho B_m (gate f_{m,a_i} + 1 - gate)``; in ``update`` mode the ``update_scale`` the modulator reports).
``ratio / coefficient`` is the share of the coefficient that reached the parameters: 1 when the
update follows the coefficient, about ``1 / coefficient`` when the optimizer normalises it away.

Arms, for each optimizer (``adamw``: the data set's own learning rate; ``sgd``: lr 0.05, momentum 0.9)
and each placement, ``gradient`` (``modulate="gradient"``, the paper's and research code's) and
``update`` (``modulate="update"``):

- ``constant``: a controlled coefficient, ``rho = 0.3`` on every encoder and step (no balance, no group
  factor, no auxiliary loss): the oracle is plain training with every encoder update times 0.3;
- ``wandering``: the same with ``rho(t)`` a seeded random walk in ``[0.3, 1.7]`` (step 0.15);
- ``default``: the real modulator, ``--preset`` (``default``) with ``validate_args=False``: its
  coefficients come from the guide heads, the balance rule and the group factor;
- with ``--compile`` also ``default+compile`` in update mode under AdamW (``compile="on"``).

Two trajectories that start together drift apart, so the real-modulator arms carry that noise
(the controlled arms much less): read ``share reached`` of the controlled arms as the mechanism, and
the ``default`` arms as what the method's own coefficients do.

    python benchmarks/update_ratio.py                                  # cohort + support2, 300 steps
    python benchmarks/update_ratio.py --datasets cohort --steps 60 --warmup 10 --quick   # smoke run

Writes ``update_ratio.json`` and ``update_ratio.md`` to ``--output``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from monai_multifair.comparison.suite import get_suite_dataset
from monai_multifair.config import load_config
from monai_multifair.core import MultiFairConfig, build_modulator
from monai_multifair.engine.loaders import materialize
from monai_multifair.engine.run_parts import build_run_parts


def load(dataset: str, quick: bool):
    """``(network, batches)``: the data set's network and a list of its training batches."""
    config = load_config(get_suite_dataset(dataset).document(quick), ["method.name=erm", "trainer.seed=0"])
    parts = build_run_parts(config, splits=("train", "val"))
    data = materialize(parts.datasets["train"], parts.collate)
    return parts, data, config


def batches(parts, data, batch_size: int, steps: int, seed: int = 0):
    n = int(data["label"].shape[0])
    order = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=order)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = perm[start : start + batch_size].tolist()
            batch = {
                k: (v[idx] if isinstance(v, torch.Tensor) else [v[i] for i in idx]) for k, v in data.items()
            }
            inputs, labels, _, extra = parts.prepare(batch)
            out.append((inputs, labels.reshape(-1).long(), batch["group"].reshape(-1).long(), extra))
            if len(out) == steps:
                break
    return out


def optimizer_for(kind: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def encoder_params(net) -> dict[str, list[torch.Tensor]]:
    return {name: [p for p in enc.parameters() if p.requires_grad] for name, enc in net.encoders.items()}


CONTROLLED = {
    "preset": "paper",
    "coefficient_rule": "none",
    "group_strength": 0.0,
    "fairness_weight": 0.0,
    "direction_weight": 0.0,
}


def schedule(kind: str, steps: int) -> list[float] | None:
    """The controlled coefficient per step (``None`` for the real modulator)."""
    if kind == "constant":
        return [0.3] * steps
    if kind == "wandering":
        gen = torch.Generator().manual_seed(11)
        value, out = 1.0, []
        for _ in range(steps):
            value = min(1.7, max(0.3, value + 0.15 * float(torch.randn((), generator=gen))))
            out.append(value)
        return out
    return None


def train(start, parts, plan, kind, lr, wd, modulation: dict | None, num_groups: int, rho=None):
    """Per step: ``{modality: update norm}`` and ``{modality: coefficient}`` (empty for plain).
    ``rho``: a controlled coefficient per step (written into the modulator's config before each call)."""
    torch.manual_seed(0)
    net = copy.deepcopy(start)
    net.train()
    opt = optimizer_for(kind, net.parameters(), lr, wd)
    mod = None
    if modulation is not None:
        config = MultiFairConfig(**{"validate_args": False, **modulation})
        mod = build_modulator(net.encoders, 2, num_groups, fused_head=net.fused_head, config=config)
        mod.attach_optimizer(opt)
    params = encoder_params(net)
    norms, coefficients = [], []
    for t, (inputs, labels, groups, extra) in enumerate(plan):
        if rho is not None:
            mod.config.modality_scale = rho[t]
        before = {m: [p.detach().clone() for p in ps] for m, ps in params.items()}
        logits = net(inputs, **extra)
        loss = F.cross_entropy(logits, labels)
        if mod is not None:
            loss = loss + mod(logits, labels, groups, extra.get("present"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        norms.append(
            {
                m: float(torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(ps, before[m]))))
                for m, ps in params.items()
            }
        )
        if mod is not None:
            stats = mod.stats()
            if "update_scale" in stats:
                c = stats["update_scale"]
            else:
                gate = stats["gate"]
                per_sample = stats["modality_scale"].unsqueeze(1) * (
                    gate * (stats["group_factor"][:, groups] - 1.0) + 1.0
                )
                c = per_sample.mean(1)
            coefficients.append({m: float(c[i]) for i, m in enumerate(mod.modality_names)})
    if mod is not None:
        mod.remove_hooks()
        mod.detach_optimizer()
    return norms, coefficients


def summarise(plain, arm, coefficients, warmup: int) -> dict[str, dict[str, float]]:
    out = {}
    for m in plain[0]:
        ratios = [a[m] / p[m] for a, p in zip(arm[warmup:], plain[warmup:]) if p[m] > 0]
        coef = [c[m] for c in coefficients[warmup:]]
        r = torch.tensor(ratios, dtype=torch.float64)
        c = torch.tensor(coef, dtype=torch.float64)
        corr = (
            float(torch.corrcoef(torch.stack([r, c]))[0, 1]) if r.std() > 0 and c.std() > 0 else float("nan")
        )
        out[m] = {
            "update_ratio": float(r.mean()),
            "coefficient": float(c.mean()),
            "share_reached": float(r.mean() / c.mean()),
            "per_step_share": float((r / c).mean()),
            "correlation": corr,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["cohort", "support2"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--compile", action="store_true", help="add the compiled update arm (AdamW)")
    parser.add_argument("--quick", action="store_true", help="the suite's --quick data sizes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("runs/update_ratio"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    t0 = time.time()
    for dataset in args.datasets:
        parts, data, config = load(dataset, args.quick)
        plan = batches(parts, data, config.trainer.batch_size, args.steps)
        num_groups = parts.datasets["train"].num_groups
        lr, wd = config.trainer.lr, config.trainer.weight_decay
        start = copy.deepcopy(parts.network)
        for kind in ("adamw", "sgd"):
            plain, _ = train(start, parts, plan, kind, lr, wd, None, num_groups)
            arms = [(c, m, {}) for c in ("constant", "wandering", "default") for m in ("gradient", "update")]
            if args.compile and kind == "adamw":
                arms.append(("default+compile", "update", {"compile": "on"}))
            for coefficient, mode, extra in arms:
                rho = schedule(coefficient, args.steps)
                base = CONTROLLED if rho is not None else {"preset": args.preset}
                modulation = {**base, "modulate": mode, **extra}
                norms, coefficients = train(start, parts, plan, kind, lr, wd, modulation, num_groups, rho)
                key = f"{dataset}/{kind}/{coefficient}/{mode}"
                results[key] = summarise(plain, norms, coefficients, args.warmup)
                print(f"{key}: {json.dumps(results[key])}", flush=True)
    meta = {
        "command": "python benchmarks/update_ratio.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v not in (False, None) and k != "output"
        ),
        "machine": f"{platform.system()} {platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "seconds": round(time.time() - t0, 1),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "update_ratio.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        "| data set | optimizer | coefficient | mode | modality | coefficient (mean) | update ratio vs plain "
        "| share reached | per-step share | corr. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, per_modality in results.items():
        dataset, kind, coefficient, mode = key.split("/")
        for m, row in per_modality.items():
            lines.append(
                f"| {dataset} | {kind} | {coefficient} | {mode} | {m} | {row['coefficient']:.3f} | "
                f"{row['update_ratio']:.3f}x | {row['share_reached']:.3f} | {row['per_step_share']:.3f} | "
                f"{row['correlation']:.2f} |"
            )
    (args.output / "update_ratio.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
