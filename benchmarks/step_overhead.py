"""Seconds per training step: plain fusion vs MultiFair (default) vs the research-code ``reference``.

All arms train the same network from the same weights on the same batches in one process; arms are
interleaved round by round so machine noise hits them alike, and the report gives medians and ratios
to the plain arm, and the host synchronisations of one step of each arm (counted by
``monai_multifair.core.sync.HostSyncCounter``; ``torch.optim`` internals exempt). On CUDA it also records peak allocated memory per arm.

    python benchmarks/step_overhead.py                      # CPU: small CNN + bag-of-words encoders
    python benchmarks/step_overhead.py --size base --amp    # GPU: ViT-B/16 + BERT-base, batch 32, bf16
    python benchmarks/step_overhead.py --quick              # CI smoke run (no timing claims)

Arms:
- ``plain``: cross-entropy only;
- ``default``: DualLevelGradientModulator, default preset, ``validate_args=False`` (no host sync);
- ``default+validate``: the same with value checks on (they synchronise the device);
- ``paper``: the ``paper`` preset (``validate_args=False``);
- ``reference``: ReferenceModulator (sklearn AUCs on the host every step);
- ``reference-loop``: ``reference`` plus the research script's extra no-grad forward for the guide
  features and its discarded extra backward (its real per-step cost).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from monai_multifair.core import MultiFairConfig, build_modulator
from monai_multifair.core.sync import HostSyncCounter
from monai_multifair.networks import MultimodalFusionClassifier
from monai_multifair.plugins import create_encoder

ARMS = ("plain", "default", "default+validate", "paper", "reference", "reference-loop")


def build(size: str, device: torch.device):
    if size == "base":
        image = create_encoder("vit-2d", img_size=224, patch_size=16, in_channels=3)  # ViT-B/16
        text = create_encoder("hf-text", config={"model_type": "bert"})  # BERT-base from its config
        batch = {"fundus": torch.randn(32, 3, 224, 224), "notes": torch.randint(1, 30000, (32, 128))}
        fusion = {"fusion_dim": 256, "num_heads": 8, "num_layers": 3}
    else:
        image = create_encoder("small-cnn-2d", in_channels=1, channels=[16, 32, 64])
        text = create_encoder("bow-text", vocab_size=8192, embedding_dim=64, max_length=128)
        batch = {"fundus": torch.randn(64, 1, 32, 32), "notes": torch.randint(1, 8192, (64, 128))}
        fusion = {"fusion_dim": 64, "num_heads": 4, "num_layers": 1}
    net = MultimodalFusionClassifier({"fundus": image, "notes": text}, num_classes=2, **fusion).to(device)
    n = batch["fundus"].shape[0]
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (n,), generator=g)
    groups = torch.randint(0, 2, (n,), generator=g)  # the reference preset knows groups 0 and 1 only
    batch = {k: v.to(device) for k, v in batch.items()}
    return net, batch, labels.to(device), groups.to(device)


def make_arm(arm: str, net, device):
    if arm == "plain":
        return None
    preset = "reference" if arm.startswith("reference") else arm.split("+")[0]
    config = MultiFairConfig(preset=preset, validate_args=arm.endswith("+validate"))
    return build_modulator(net.encoders, 2, 2, fused_head=net.fused_head, config=config).to(device)


def step(arm, net, mod, opt, batch, labels, groups, amp: bool, device):
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    if arm == "reference-loop":  # the research script's extra no-grad forward for guide features
        with torch.no_grad(), autocast:
            net(batch)
    with autocast:
        logits = net(batch)
        loss = F.cross_entropy(logits.float(), labels)
        if mod is not None:
            loss = loss + mod(logits, labels, groups)
    opt.zero_grad(set_to_none=True)
    if arm == "reference-loop":  # ... and its extra full backward whose result is thrown away
        loss.backward(retain_graph=True)
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if arm == "reference-loop":
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.8)
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=("small", "base"), default="small")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per arm per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny run for CI (numbers mean nothing)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup = 1, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net0, batch, labels, groups = build(args.size, device)
    start_state = {k: v.clone() for k, v in net0.state_dict().items()}
    arms = {}
    for arm in ARMS:
        net, *_ = build(args.size, device) if arm != "plain" else (net0,)
        net.load_state_dict(start_state)
        mod = make_arm(arm, net, device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        for _ in range(args.warmup):
            step(arm, net, mod, opt, batch, labels, groups, args.amp, device)
        arms[arm] = (net, mod, opt)
    syncs = {}
    for arm, (net, mod, opt) in arms.items():  # host synchronisations in one step, counted
        with HostSyncCounter() as counter:
            step(arm, net, mod, opt, batch, labels, groups, args.amp, device)
        syncs[arm] = {"count": counter.count, "ops": dict(counter.ops), "optimizer_internal": counter.exempt}
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    peak: dict[str, int] = {}
    for _ in range(args.rounds):
        for arm, (net, mod, opt) in arms.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(arm, net, mod, opt, batch, labels, groups, args.amp, device)
            if device.type == "cuda":
                torch.cuda.synchronize()
                peak[arm] = max(peak.get(arm, 0), torch.cuda.max_memory_allocated())
            times[arm].append((time.perf_counter() - t0) / args.steps)
    base = statistics.median(times["plain"])
    result = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "size": args.size,
        "amp": args.amp,
        "batch": int(labels.shape[0]),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "arms": {
            arm: {
                "seconds_per_step": statistics.median(t),
                "ratio_to_plain": statistics.median(t) / base,
                "host_syncs_per_step": syncs[arm]["count"],
                "host_sync_ops": syncs[arm]["ops"],
                **(
                    {"peak_mem_ratio": peak[arm] / peak["plain"], "peak_mem_bytes": peak[arm]} if peak else {}
                ),
            }
            for arm, t in times.items()
        },
    }
    print(f"{'arm':18s} {'s/step':>9s} {'x plain':>8s} {'syncs':>6s}" + (f" {'mem x':>7s}" if peak else ""))
    for arm, r in result["arms"].items():
        mem = f" {r['peak_mem_ratio']:7.3f}" if peak else ""
        print(
            f"{arm:18s} {r['seconds_per_step']:9.4f} {r['ratio_to_plain']:8.3f} {r['host_syncs_per_step']:6d}{mem}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
