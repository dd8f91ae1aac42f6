"""Seconds per training step: plain fusion vs MultiFair (default, eager and compiled) vs the research-code
``reference``.

All arms train the same network from the same weights on the same batches in one process; arms are
interleaved round by round (the order rotating every round) so machine noise hits them alike. The
report gives, per arm, the median seconds per step, the ratio of medians to the plain arm and the
spread of the per-round ratios (quartiles), the modulator call's own time (CUDA events around it on
a GPU, the host clock on the CPU), the host synchronisations of one step (counted by
``monai_multifair.core.sync.HostSyncCounter``; ``torch.optim`` internals exempt) and, on CUDA, the
peak allocated memory.

    python benchmarks/step_overhead.py                           # CPU: small CNN + bag-of-words encoders
    python benchmarks/step_overhead.py --threads 1 --clock thread   # CPU time of the one torch thread
    python benchmarks/step_overhead.py --size fairvision --amp   # GPU: FairVision preset encoders
    python benchmarks/step_overhead.py --size base --amp         # GPU: ViT-B/16 + BERT-base, batch 32, bf16
    python benchmarks/step_overhead.py --quick                   # CI smoke run (no timing claims)

Sizes:
- ``small``: the demo network (small CNN on 1x32x32 + bag-of-words text, fusion width 64), batch 64;
- ``fairvision``: the ``fairvision`` preset's encoders (ResNet-18 on a 1x224x224 fundus image, slice-wise
  ResNet-18 over 32 OCT B-scans of 1x224x224, fusion width 128, 4 heads, 2 layers), batch 16;
- ``base``: ViT-B/16 (3x224x224) + BERT-base (128 tokens), fusion width 256, batch 32.

Arms (``--arms`` picks some; by default every arm, ``default+compile`` on CUDA only):
- ``plain``: cross-entropy only;
- ``default``: DualLevelGradientModulator, default preset, ``validate_args=False`` (no host sync),
  ``compile="off"``: the eager step (what ``compile="auto"`` runs on a CPU);
- ``default+compile``: the same with ``compile="on"`` (what ``auto`` runs on CUDA); compiled during
  the warm-up, which is not timed;
- ``default+validate``: the eager default with value checks on (they synchronise the device);
- ``paper``: the ``paper`` preset (``validate_args=False``, eager);
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

ARMS = ("plain", "default", "default+compile", "default+validate", "paper", "reference", "reference-loop")


def build(size: str, device: torch.device):
    if size == "base":
        encoders = {
            "fundus": create_encoder("vit-2d", img_size=224, patch_size=16, in_channels=3),  # ViT-B/16
            "notes": create_encoder("hf-text", config={"model_type": "bert"}),  # BERT-base from its config
        }
        batch = {"fundus": torch.randn(32, 3, 224, 224), "notes": torch.randint(1, 30000, (32, 128))}
        fusion = {"fusion_dim": 256, "num_heads": 8, "num_layers": 3}
    elif size == "fairvision":  # the encoders and sizes of config/presets/fairvision.yaml
        encoders = {
            "fundus": create_encoder("resnet18-2d", in_channels=1),
            "oct": create_encoder(
                "slicewise-oct", slice_encoder="resnet18-2d", in_channels=1, attention_dim=128
            ),
        }
        batch = {"fundus": torch.randn(16, 1, 224, 224), "oct": torch.randn(16, 32, 1, 224, 224)}
        fusion = {"fusion_dim": 128, "num_heads": 4, "num_layers": 2}
    else:
        encoders = {
            "fundus": create_encoder("small-cnn-2d", in_channels=1, channels=[16, 32, 64]),
            "notes": create_encoder("bow-text", vocab_size=8192, embedding_dim=64, max_length=128),
        }
        batch = {"fundus": torch.randn(64, 1, 32, 32), "notes": torch.randint(1, 8192, (64, 128))}
        fusion = {"fusion_dim": 64, "num_heads": 4, "num_layers": 1}
    net = MultimodalFusionClassifier(encoders, num_classes=2, **fusion).to(device)
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
    config = MultiFairConfig(
        preset=preset,
        validate_args=arm.endswith("+validate"),
        compile="on" if arm.endswith("+compile") else "off",
    )
    return build_modulator(net.encoders, 2, 2, fused_head=net.fused_head, config=config).to(device)


class ModulatorClock:
    """Time of the modulator call: CUDA events around it on a GPU (device time between the events),
    the host clock on the CPU. ``pending`` keeps the events until the round's synchronisation."""

    def __init__(self, device: torch.device, clock) -> None:
        self.device, self.clock = device, clock
        self.pending: list = []
        self.seconds: list[float] = []

    def __call__(self, fn):
        if self.device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            stop.record()
            self.pending.append((start, stop))
            return out
        t0 = self.clock()
        out = fn()
        self.seconds.append(self.clock() - t0)
        return out

    def collect(self) -> None:
        self.seconds.extend(start.elapsed_time(stop) / 1000 for start, stop in self.pending)
        self.pending.clear()


def step(arm, net, mod, opt, batch, labels, groups, amp: bool, device, timer=None):
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    if arm == "reference-loop":  # the research script's extra no-grad forward for guide features
        with torch.no_grad(), autocast:
            net(batch)
    with autocast:
        logits = net(batch)
        loss = F.cross_entropy(logits.float(), labels)
        if mod is not None:
            aux = timer(lambda: mod(logits, labels, groups)) if timer else mod(logits, labels, groups)
            loss = loss + aux
    opt.zero_grad(set_to_none=True)
    if arm == "reference-loop":  # ... and its extra full backward whose result is thrown away
        loss.backward(retain_graph=True)
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if arm == "reference-loop":
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.8)
    opt.step()


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=("small", "fairvision", "base"), default="small")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per arm per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny run for CI (numbers mean nothing)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=("wall", "thread"),
        default="wall",
        help="wall: elapsed time; thread: CPU time of the calling thread (CPU only, with --threads 1: "
        "time the machine's other jobs take from this process is not counted)",
    )
    parser.add_argument("--arms", help=f"comma-separated subset of {','.join(ARMS)} (plain is always run)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup = 1, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.clock == "thread" and (device.type != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock thread measures one CPU thread: use it with --device cpu --threads 1")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    if args.arms:
        chosen = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = [a for a in chosen if a not in ARMS]
        if unknown:
            parser.error(f"unknown arm {unknown[0]!r}; known: {', '.join(ARMS)}")
        arm_names = ["plain", *[a for a in ARMS if a in chosen and a != "plain"]]
    else:
        arm_names = [a for a in ARMS if a != "default+compile" or device.type == "cuda"]
    torch.manual_seed(0)
    net0, batch, labels, groups = build(args.size, device)
    start_state = {k: v.clone() for k, v in net0.state_dict().items()}
    arms = {}
    for arm in arm_names:
        net, *_ = build(args.size, device) if arm != "plain" else (net0,)
        net.load_state_dict(start_state)
        mod = make_arm(arm, net, device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        t0 = time.perf_counter()
        for _ in range(args.warmup):  # the compiled arm compiles here
            step(arm, net, mod, opt, batch, labels, groups, args.amp, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"warm-up {arm}: {time.perf_counter() - t0:.1f} s", flush=True)
        arms[arm] = (net, mod, opt)
    syncs = {}
    for arm, (net, mod, opt) in arms.items():  # host synchronisations in one step, counted
        if arm.endswith("+compile"):  # dispatch modes switch compiled code off: its eager twin is `default`
            syncs[arm] = None
            continue
        with HostSyncCounter() as counter:
            step(arm, net, mod, opt, batch, labels, groups, args.amp, device)
        syncs[arm] = {"count": counter.count, "ops": dict(counter.ops), "optimizer_internal": counter.exempt}
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    timers = {arm: ModulatorClock(device, clock) for arm in arms}
    peak: dict[str, int] = {}
    names = list(arms)
    for r in range(args.rounds):
        for arm in names[r % len(names) :] + names[: r % len(names)]:
            net, mod, opt = arms[arm]
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = clock()
            for _ in range(args.steps):
                step(arm, net, mod, opt, batch, labels, groups, args.amp, device, timers[arm])
            if device.type == "cuda":
                torch.cuda.synchronize()
                peak[arm] = max(peak.get(arm, 0), torch.cuda.max_memory_allocated())
            times[arm].append((clock() - t0) / args.steps)
            timers[arm].collect()
    base = statistics.median(times["plain"])
    result = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "size": args.size,
        "amp": args.amp,
        "batch": int(labels.shape[0]),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "arms": {},
    }
    for arm, t in times.items():
        ratios = [a / p for a, p in zip(t, times["plain"])]  # same round, so the same machine noise
        low, high = _quartiles(ratios)
        entry = {
            "seconds_per_step": statistics.median(t),
            "ratio_to_plain": statistics.median(t) / base,
            "round_ratio_q25": low,
            "round_ratio_q75": high,
            "seconds_per_step_rounds": t,
            "modulator_seconds_per_call": statistics.median(timers[arm].seconds)
            if timers[arm].seconds
            else None,
            "host_syncs_per_step": None if syncs[arm] is None else syncs[arm]["count"],
            "host_sync_ops": None if syncs[arm] is None else syncs[arm]["ops"],
        }
        mod = arms[arm][1]
        if arm.endswith("+compile"):  # how many modulator calls the compiled functions served
            entry["compiled_calls"] = {
                s.name: s.compiled_calls for s in (mod._guide_gradient_step, mod._statistics_step)
            }
        if peak:
            entry.update(peak_mem_ratio=peak[arm] / peak["plain"], peak_mem_bytes=peak[arm])
        result["arms"][arm] = entry
    header = (
        f"{'arm':18s} {'ms/step':>9s} {'x plain':>8s} {'rounds q25-q75':>15s} {'mod ms':>7s} {'syncs':>6s}"
    )
    print(header + (f" {'mem x':>7s}" if peak else ""))
    for arm, r in result["arms"].items():
        mod_ms = (
            "-" if r["modulator_seconds_per_call"] is None else f"{r['modulator_seconds_per_call'] * 1e3:.2f}"
        )
        sync = "-" if r["host_syncs_per_step"] is None else str(r["host_syncs_per_step"])
        mem = f" {r['peak_mem_ratio']:7.3f}" if peak else ""
        print(
            f"{arm:18s} {r['seconds_per_step'] * 1e3:9.2f} {r['ratio_to_plain']:8.3f} "
            f"{r['round_ratio_q25']:7.3f}-{r['round_ratio_q75']:.3f} {mod_ms:>7s} {sync:>6s}{mem}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
