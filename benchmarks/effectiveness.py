"""Does dual-level modulation make the embedded-cohort model fairer and more balanced? (issue 7)

Trains the demo network (small CNN on the fundus image + bag-of-words on the note, attention fusion)
on the embedded synthetic cohort for every arm and seed, with the core modulator driven by a plain loop
(the MONAI handler is tested equal to that loop), and reports test-set AUC, ES-AUC, worst-group AUC,
DPD and DEOdds with 95% intervals over seeds, plus modality balance: the fused model's test AUC with
only the image or only the note present (the other modality masked out of the fusion).

    python benchmarks/effectiveness.py --seeds 5 --out docs/benchmarks/effectiveness   # full run
    python benchmarks/effectiveness.py --quick                                       # CI smoke run
    python benchmarks/effectiveness.py --arms baseline,default --seeds 2             # a subset

Every number in docs/benchmarks.md's effectiveness tables comes from this script's JSON output.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from monai_multifair.core import MultiFairConfig, build_modulator
from monai_multifair.data import make_cohort
from monai_multifair.metrics import fairness_summary
from monai_multifair.networks import MultimodalFusionClassifier
from monai_multifair.plugins import create_encoder

METRICS = ("auc", "es_auc", "worst_group_auc", "dpd", "deodds", "image_only_auc", "notes_only_auc")


@dataclass(frozen=True)
class Arm:
    """One experimental condition."""

    description: str
    modulation: dict[str, Any] | None = None  # MultiFairConfig fields; None = no modulation
    optimizer: str = "adamw"
    demographic_token: bool = False
    grad_clip: float | None = None
    tags: tuple[str, ...] = field(default=())


ARMS: dict[str, Arm] = {
    "baseline": Arm("plain fusion, AdamW", tags=("main",)),
    "modality-only": Arm(
        "modality level only (CGGM-style): B_m and direction loss, no group factor, no fairness loss",
        {"preset": "paper", "group_strength": 0.0, "fairness_weight": 0.0},
        tags=("main",),
    ),
    "group-only": Arm(
        "group level only: group factor and fairness loss, B_m = 1, no direction loss",
        {"preset": "paper", "coefficient_rule": "none", "direction_weight": 0.0},
        tags=("main",),
    ),
    "paper": Arm("MultiFair `paper` preset (section 3 as written)", {"preset": "paper"}, tags=("main",)),
    "reference": Arm(
        "MultiFair `reference` preset (research code), grad clip 0.8",
        {"preset": "reference"},
        grad_clip=0.8,
        tags=("main",),
    ),
    "default": Arm("MultiFair `default` preset", {"preset": "default"}, tags=("main",)),
    "paper+smooth+route+short": Arm(
        "paper + smoothed B_m (0.98) + routing group factor + shortfall loss (the default preset's settings)",
        {
            "preset": "paper",
            "coefficient_ema_decay": 0.98,
            "group_factor_rule": "routing",
            "fairness_loss": "shortfall",
        },
        tags=("alt",),
    ),
    "token+paper": Arm(
        "demographic token + MultiFair `paper`", {"preset": "paper"}, demographic_token=True, tags=("main",)
    ),
    "token": Arm("plain fusion + demographic token", demographic_token=True, tags=("main",)),
    "token+default": Arm(
        "demographic token + MultiFair `default`",
        {"preset": "default"},
        demographic_token=True,
        tags=("main",),
    ),
    "paper+smoothed": Arm(
        "paper + B_m smoothed by an EMA (0.98)",
        {"preset": "paper", "coefficient_ema_decay": 0.98},
        tags=("alt",),
    ),
    "paper+routing": Arm(
        "paper + routing group factor", {"preset": "paper", "group_factor_rule": "routing"}, tags=("alt",)
    ),
    "paper+shortfall": Arm(
        "paper + shortfall fairness loss", {"preset": "paper", "fairness_loss": "shortfall"}, tags=("alt",)
    ),
    "sgd-baseline": Arm("plain fusion, SGD with momentum", optimizer="sgd", tags=("alt",)),
    "sgd+paper": Arm(
        "MultiFair `paper`, SGD with momentum", {"preset": "paper"}, optimizer="sgd", tags=("alt",)
    ),
    "default-batch-factor": Arm(
        "default with the group factor averaged over the batch (one scalar per modality)",
        {"preset": "default", "group_factor_reduction": "batch"},
        tags=("ablation",),
    ),
    "default-logistic-stat": Arm(
        "default with the research code's logistic surrogate as the group statistic",
        {"preset": "default", "group_statistic": "logistic"},
        tags=("ablation",),
    ),
    "default-no-fairness-grad": Arm(
        "default with a constant (gradient-free) fairness term, i.e. fairness_weight = 0",
        {"preset": "default", "fairness_weight": 0.0},
        tags=("ablation",),
    ),
    "default-no-direction": Arm(
        "default without the direction loss",
        {"preset": "default", "direction_weight": 0.0},
        tags=("ablation",),
    ),
}


@dataclass
class Budget:
    n_patients: int = 3000
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    sgd_lr: float = 0.05
    weight_decay: float = 1e-4


def load_cohort(budget: Budget, data_seed: int):
    cohort = make_cohort(n_patients=budget.n_patients, seed=data_seed)
    text = create_encoder("bow-text", vocab_size=8192, embedding_dim=64, max_length=128)
    frame = cohort.frame
    out = {}
    for split in ("train", "val", "test"):
        idx = cohort.split_indices(split)
        out[split] = {
            "fundus": torch.from_numpy(cohort.images[idx]).float() / 255.0,
            "notes": text.tokenize(frame["note"].iloc[idx].tolist()),
            "label": torch.as_tensor(frame["label"].to_numpy()[idx], dtype=torch.long),
            "group": torch.as_tensor(frame["race"].to_numpy()[idx], dtype=torch.long),
        }
    return out


def build_network(arm: Arm, num_groups: int) -> MultimodalFusionClassifier:
    encoders = {
        "fundus": create_encoder("small-cnn-2d", in_channels=1, channels=[16, 32, 64]),
        "notes": create_encoder("bow-text", vocab_size=8192, embedding_dim=64, max_length=128),
    }
    return MultimodalFusionClassifier(
        encoders,
        num_classes=2,
        fusion_dim=64,
        num_heads=4,
        num_layers=1,
        dropout=0.1,
        demographic_token=arm.demographic_token,
        num_groups=num_groups if arm.demographic_token else None,
    )


@torch.no_grad()
def predict(net, split, present=None, batch_size=512):
    net.eval()
    scores = []
    n = split["label"].shape[0]
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        inputs = {"fundus": split["fundus"][sl], "notes": split["notes"][sl]}
        groups = split["group"][sl] if net.uses_groups else None
        p = None if present is None else present.expand(inputs["fundus"].shape[0], -1)
        scores.append(torch.softmax(net(inputs, groups=groups, present=p), dim=1)[:, 1])
    return torch.cat(scores).numpy()


def run_one(arm: Arm, data, seed: int, budget: Budget) -> dict[str, float]:
    torch.manual_seed(seed)
    num_groups = int(data["train"]["group"].max()) + 1
    net = build_network(arm, num_groups)
    if arm.optimizer == "sgd":
        opt = torch.optim.SGD(
            net.parameters(), lr=budget.sgd_lr, momentum=0.9, weight_decay=budget.weight_decay
        )
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    mod = None
    if arm.modulation is not None:
        config = MultiFairConfig(**{**arm.modulation, "validate_args": False})
        mod = build_modulator(net.encoders, 2, num_groups, fused_head=net.fused_head, config=config)
    train = data["train"]
    n = train["label"].shape[0]
    order = torch.Generator().manual_seed(seed)
    for _ in range(budget.epochs):
        net.train()
        perm = torch.randperm(n, generator=order)
        for start in range(0, n - budget.batch_size + 1, budget.batch_size):
            idx = perm[start : start + budget.batch_size]
            inputs = {"fundus": train["fundus"][idx], "notes": train["notes"][idx]}
            labels, groups = train["label"][idx], train["group"][idx]
            logits = net(inputs, groups=groups if net.uses_groups else None)
            loss = F.cross_entropy(logits, labels)
            if mod is not None:
                loss = loss + mod(logits, labels, groups)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if arm.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), arm.grad_clip)
            opt.step()
    test = data["test"]
    y, g = test["label"].numpy(), test["group"].numpy()
    summary = fairness_summary(y, predict(net, test), g)
    result = {k: float(summary[k]) for k in ("auc", "es_auc", "worst_group_auc", "dpd", "deodds")}
    result.update({f"group_auc/{k}": float(v) for k, v in summary["group_auc"].items()})
    for name, mask in (("image_only_auc", [True, False]), ("notes_only_auc", [False, True])):
        only = fairness_summary(y, predict(net, test, present=torch.tensor([mask])), g)
        result[name] = float(only["auc"])
        result.update({f"{name}/{k}": float(v) for k, v in only["group_auc"].items()})
    if mod is not None:
        mod.remove_hooks()
    return result


_WORKER: dict[str, Any] = {}


def _init_worker(budget: Budget, data_seed: int, threads: int, extra: dict[str, Arm]) -> None:
    torch.set_num_threads(threads)
    ARMS.update(extra)
    _WORKER.update(budget=budget, data=load_cohort(budget, data_seed))


def _work(arm: str, seed: int) -> tuple[dict[str, float], float]:
    t0 = time.time()
    return run_one(ARMS[arm], _WORKER["data"], seed, _WORKER["budget"]), time.time() - t0


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval over seeds."""
    finite = [v for v in values if math.isfinite(v)]
    mean = statistics.fmean(finite)
    if len(finite) < 2:
        return mean, float("nan"), float("nan")
    from scipy.stats import t

    half = t.ppf(0.975, len(finite) - 1) * statistics.stdev(finite) / math.sqrt(len(finite))
    return mean, mean - half, mean + half


def summarise(runs: dict[str, list[dict[str, float]]], baseline: str = "baseline") -> dict[str, Any]:
    table = {}
    for arm, results in runs.items():
        keys = sorted({k for r in results for k in r})
        row = {}
        for key in keys:
            mean, lo, hi = t_interval([r[key] for r in results])
            row[key] = {"mean": mean, "ci95": [lo, hi]}
        if baseline in runs and arm != baseline and len(runs[baseline]) == len(results):
            for key in ("auc", "es_auc", "worst_group_auc"):
                diffs = [r[key] - b[key] for r, b in zip(results, runs[baseline])]
                mean, lo, hi = t_interval(diffs)
                row[f"delta_{key}"] = {"mean": mean, "ci95": [lo, hi]}
        table[arm] = row
    return table


def markdown(table: dict[str, Any], arms: list[str]) -> str:
    def cell(row, key):
        if key not in row:
            return ""
        m, (lo, hi) = row[key]["mean"], row[key]["ci95"]
        return f"{m:.3f}" if not math.isfinite(lo) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

    cols = ("auc", "es_auc", "worst_group_auc", "dpd", "deodds", "image_only_auc", "notes_only_auc")
    lines = ["| arm | " + " | ".join(cols) + " | ΔES-AUC vs baseline | Δworst-group vs baseline |"]
    lines.append("|" + "---|" * (len(cols) + 3))
    for arm in arms:
        row = table[arm]
        lines.append(
            f"| {arm} | "
            + " | ".join(cell(row, c) for c in cols)
            + f" | {cell(row, 'delta_es_auc')} | {cell(row, 'delta_worst_group_auc')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arms", default="all", help="comma list, 'all', or a tag: main, alt, ablation")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=Budget.epochs)
    parser.add_argument("--n-patients", type=int, default=Budget.n_patients)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 arms, 1 seed, tiny budget (CI smoke run)")
    parser.add_argument("--seed-offset", type=int, default=0, help="first seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one run each at a time)")
    parser.add_argument(
        "--extra",
        default=None,
        help='extra arms as JSON: {"name": {"modulation": {...}, "optimizer": "sgd"}}',
    )
    parser.add_argument("--out", type=Path, help="folder for results.json, results.md and effectiveness.png")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="combine the runs of earlier results.json files (later files win per arm)",
    )
    args = parser.parse_args()
    if args.merge:
        merged_runs, merged_meta = {}, []
        for path in args.merge:
            loaded = json.loads(path.read_text())
            merged_runs.update(loaded["runs"])
            merged_meta.append({"file": str(path), **loaded["meta"]})
        write_outputs(args.out, merged_runs, list(merged_runs), {"merged_from": merged_meta})
        return
    if args.extra:
        for name, spec in json.loads(args.extra).items():
            ARMS[name] = Arm(spec.pop("description", name), tags=("extra",), **spec)
    budget = Budget(n_patients=args.n_patients, epochs=args.epochs)
    if args.quick:
        budget, args.seeds, args.arms = Budget(n_patients=600, epochs=1), 1, "baseline,default"
    if args.arms == "all":
        names = list(ARMS)
    elif args.arms in ("main", "alt", "ablation"):
        names = [a for a, spec in ARMS.items() if args.arms in spec.tags]
    else:
        names = args.arms.split(",")
        unknown = [a for a in names if a not in ARMS]
        if unknown:
            parser.error(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
    jobs = [(arm, seed) for seed in range(args.seed_offset, args.seed_offset + args.seeds) for arm in names]
    extra = {a: ARMS[a] for a in names if "extra" in ARMS[a].tags}
    runs: dict[str, list[dict[str, float]]] = {a: [None] * args.seeds for a in names}
    started = time.time()
    with ProcessPoolExecutor(
        max_workers=args.jobs,
        mp_context=multiprocessing.get_context("spawn"),  # no fork after torch's thread pools exist
        initializer=_init_worker,
        initargs=(budget, args.data_seed, args.threads, extra),
    ) as pool:
        futures = {pool.submit(_work, arm, seed): (arm, seed) for arm, seed in jobs}
        for future in as_completed(futures):
            arm, seed = futures[future]
            r, seconds = future.result()
            runs[arm][seed - args.seed_offset] = r
            print(
                f"seed {seed} {arm:26s} auc {r['auc']:.3f} es_auc {r['es_auc']:.3f} worst {r['worst_group_auc']:.3f} "
                f"img {r['image_only_auc']:.3f} txt {r['notes_only_auc']:.3f} ({seconds:.0f}s)",
                flush=True,
            )
    meta = {
        "command": "python benchmarks/effectiveness.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k not in ("out", "quick", "merge")
        ),
        "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}, "
        f"{args.jobs} worker processes x {args.threads} thread(s)",
        "budget": budget.__dict__,
        "seconds": round(time.time() - started),
        "arms": {a: ARMS[a].description for a in names},
        "modulation": {a: ARMS[a].modulation for a in names},
    }
    write_outputs(args.out, runs, names, meta)


def write_outputs(
    out: Path | None, runs: dict[str, list[dict[str, float]]], names: list[str], meta: dict
) -> None:
    table = summarise(runs)
    text = markdown(table, names)
    print(text)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": table, "runs": runs}, indent=1))
    (out / "results.md").write_text(text + "\n")
    plot(table, names, out / "effectiveness.png")


def plot(table: dict[str, Any], names: list[str], path: Path) -> None:
    """ES-AUC, worst-group AUC and the single-modality AUCs per arm, mean with 95% interval over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("es_auc", "ES-AUC"), ("worst_group_auc", "worst-group AUC"), ("auc", "AUC"),
              ("image_only_auc", "image-only AUC (balance)"))  # fmt: skip
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 0.34 * len(names) + 1.5), sharey=True
    )
    y = np.arange(len(names))
    for ax, (key, title) in zip(axes, panels):
        means = np.array([table[a][key]["mean"] for a in names])
        lo = np.array([table[a][key]["ci95"][0] for a in names])
        hi = np.array([table[a][key]["ci95"][1] for a in names])
        err = np.vstack([means - lo, hi - means])
        ax.errorbar(means, y, xerr=np.nan_to_num(err), fmt="o", color="tab:blue", capsize=3)
        if "baseline" in table:
            ax.axvline(table["baseline"][key]["mean"], color="grey", ls="--", lw=1)
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
