"""Samples per second of the FairVision loader against the training step of the FairVision preset.

Generates FairVision-size subjects (``oct_bscans`` uint8 200 x 200 x 200, ``slo_fundus`` uint8 200 x 200,
label and attributes; ``np.savez``, uncompressed, or ``--compressed``) and reads them as the
``fairvision`` preset does (fundus + 32 evenly spaced B-scans, both resized to 224 x 224, uint8 scaled to
[0, 1]): a ``DataLoader`` with the engine's sampler and collate, batch 16, ``--workers`` worker
processes, one pass over every file per round after a warm-up pass (the page cache then holds the
files, as it does after the first epoch on a machine with enough memory). ``--cache disk`` measures the
second epoch of ``pipeline.cache: disk`` instead (MONAI ``PersistentDataset`` files of the decoded,
resized tensors).

The step is the preset's network (ResNet-18 on the fundus, a slice-wise ResNet-18 with attention
pooling on the B-scans, attention fusion) on one batch: forward, cross-entropy, backward and AdamW
step, under the preset's ``amp`` (bfloat16 autocast), median over ``--steps`` after one warm-up step, on
``--device`` with ``--threads`` torch threads. The ratio ``loader samples/s / model samples/s`` says
how many times faster the loader delivers samples than the step consumes them (>= 1: the loader keeps
up).

    python benchmarks/loader_throughput.py --files 48 --workers 0 2 4 --json out.json
    python benchmarks/loader_throughput.py --device cuda --workers 0 4 8 16   # a GPU's step
    python benchmarks/loader_throughput.py --quick      # CI smoke run (tiny sizes, no timing claims)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from monai_multifair.config import load_config
from monai_multifair.data import MultimodalCollate, build_datasets
from monai_multifair.engine import EpochSampler
from monai_multifair.engine.builders import build_collate, build_network, build_optimizer

FOLDERS = ("Training", "Validation", "Test")


def write_subjects(root: Path, files: int, *, size: int, slices: int, compressed: bool, seed: int = 0) -> int:
    """``files`` training subjects (and 2 per other split); returns the bytes of one training file."""
    rng = np.random.default_rng(seed)
    save = np.savez_compressed if compressed else np.savez
    for folder, count in zip(FOLDERS, (files, 2, 2)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            save(
                root / folder / f"data_{i:05d}.npz",
                oct_bscans=rng.integers(0, 256, (slices, size, size), dtype=np.uint8),
                slo_fundus=rng.integers(0, 256, (size, size), dtype=np.uint8),
                glaucoma=np.int64(i % 2),
                race=np.int64(i % 3),
                male=np.int64(i % 2),
                hispanic=np.int64(0),
                language=np.int64(0),
                maritalstatus=np.int64(0),
            )
    return (root / FOLDERS[0] / "data_00000.npz").stat().st_size


def loader_rate(dataset, workers: int, batch_size: int, rounds: int) -> dict:
    """Median samples/s over ``rounds`` passes (after one warm-up pass) of a DataLoader with ``workers``."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle=True, seed=0),
        collate_fn=MultimodalCollate(),
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    times = []
    for r in range(rounds + 1):
        loader.sampler.set_epoch(r + 1)
        start = time.perf_counter()
        count = sum(len(batch["id"]) for batch in loader)
        if r:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "workers": workers,
        "samples": count,
        "seconds_per_pass": seconds,
        "samples_per_s": count / seconds,
    }


def step_time(config, datasets, batch_size: int, steps: int, device: torch.device) -> dict:
    """Median seconds of one training step of the preset's network on one batch (already on ``device``)."""
    torch.manual_seed(0)
    network = build_network(config, datasets["train"]).to(device)
    optimizer = build_optimizer(config, network)
    collate = build_collate(network, datasets["train"])
    batch = collate([datasets["train"][i % len(datasets["train"])] for i in range(batch_size)])
    inputs = {m: batch[m].to(device) for m in network.modality_names}
    labels = batch["label"].to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.trainer.amp)
    times = []
    for s in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast:
            logits = network(inputs)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if s:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "device": str(device),
        "batch_size": batch_size,
        "seconds_per_step": seconds,
        "samples_per_s": batch_size / seconds,
        "amp_bfloat16": config.trainer.amp,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=48, help="training subjects to generate")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per worker count")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads of the process"
    )
    parser.add_argument("--device", default="cpu", help="device of the training step (cpu, cuda, cuda:N)")
    parser.add_argument("--compressed", action="store_true", help="np.savez_compressed instead of np.savez")
    parser.add_argument("--cache", choices=("none", "disk"), default="none")
    parser.add_argument(
        "--folder", type=Path, default=None, help="where to write the files (default: a temp dir)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    size, slices, image, keep, batch = (200, 200, 224, 32, 16) if not args.quick else (24, 12, 16, 4, 4)
    if args.quick:
        args.files, args.workers, args.rounds, args.steps = 8, [0, 2], 1, 1
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        root = Path(tmp) / "FairVision"
        file_bytes = write_subjects(root, args.files, size=size, slices=slices, compressed=args.compressed)
        overrides = [
            f"data.fairvision.root={root}",
            f"data.fairvision.image_size=[{image}, {image}]",
            f"data.fairvision.oct_slices={keep}",
        ]
        if args.quick:
            overrides += [
                "encoders.fundus.options={in_channels: 1, widen_factor: 0.125}",
                "encoders.oct.options={slice_encoder: resnet18-2d, slice_encoder_options: {widen_factor: 0.125}, "
                "in_channels: 1, attention_dim: 8}",
                "fusion.fusion_dim=16",
                "fusion.num_heads=2",
            ]
        if args.cache == "disk":
            overrides += ["pipeline.cache=disk", f"pipeline.cache_dir={Path(tmp) / 'cache'}"]
        config = load_config("fairvision", overrides)
        datasets = build_datasets(config)
        loaders = [loader_rate(datasets["train"], w, batch, args.rounds) for w in args.workers]
        step = step_time(config, datasets, batch, args.steps, torch.device(args.device))
    for row in loaders:
        row["ratio_to_step"] = row["samples_per_s"] / step["samples_per_s"]
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": args.threads,
            "load_average_1min_before_after": [load_before[0], os.getloadavg()[0]],
        },
        "files": {
            "subjects": args.files,
            "oct_bscans": [slices, size, size],
            "slo_fundus": [size, size],
            "bytes_per_file": file_bytes,
            "compressed": args.compressed,
        },
        "preset": {"image_size": image, "oct_slices": keep, "cache": args.cache},
        "loader": loaders,
        "step": step,
        "quick": args.quick,
    }
    print(
        f"step: {step['seconds_per_step']:.2f} s / batch of {batch} = {step['samples_per_s']:.2f} samples/s"
    )
    print("| workers | samples/s | x model |")
    print("|---|---|---|")
    for row in loaders:
        print(f"| {row['workers']} | {row['samples_per_s']:.1f} | {row['ratio_to_step']:.1f} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
