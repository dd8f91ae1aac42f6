"""A careless or hostile user's inputs, as a table: each gives exit code 2, one line on stderr naming
the file / key / value, and leaves no half-written file behind (issue 15, items 4, 5, 6 and 8; issue 24:
checkpoint records, weights files, an empty config, several processes, hints).

Every case builds its inputs in ``tmp_path`` and returns the command line; the expected message is a
regular expression matched against the whole line after ``multifair <command>: error: ``.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from monai_multifair import atomic_io
from monai_multifair.cli import main, one_line
from monai_multifair.engine.checkpoint_files import save_checkpoint

_spec = importlib.util.spec_from_file_location(
    "data_writers", Path(__file__).parents[1] / "data" / "conftest.py"
)
_writers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_writers)
write_fairvision = _writers.write_fairvision  # the data tests' FairVision writer

REPORT_FILES = ("report.html", "report.md", "report.json")


@dataclass
class Case:
    name: str
    build: Callable[[Path, pytest.MonkeyPatch], list[str]]
    message: str  # regular expression; {tmp} is replaced by the escaped tmp_path
    skip: str | None = None


# ---------------------------------------------------------------------------------------------------
# inputs
def _predictions(tmp: Path, rows: int = 120) -> Path:
    rng = np.random.default_rng(0)
    p = rng.random(rows)
    table = pd.DataFrame(
        {"y": (rng.random(rows) < p).astype(int), "p": p, "race": rng.choice(["A", "B"], rows)}
    )
    path = tmp / "preds.csv"
    table.to_csv(path, index=False)
    return path


def _report(tmp: Path, *extra: str, predictions: Path | None = None) -> list[str]:
    predictions = predictions or _predictions(tmp)
    return [
        "report", str(predictions), "--label-column", "y", "--score-column", "p",
        "--group-columns", "race", "--output", str(tmp / "out"), "--n-boot", "20", "--min-support", "1",
        *extra,
    ]  # fmt: skip


def _read_only_folder(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A folder the process may not write into (simulated: tests may run as root, which ignores modes)."""
    out = tmp / "out"
    out.mkdir()
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if Path(path).parent == out and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(atomic_io.os, "open", refuse)
    return _report(tmp)


def _disk_full(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_io.os, "fsync", fsync)
    return _report(tmp)


def _existing_report(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "report.md").write_text("an earlier audit\n")
    return _report(tmp)


def _header_only(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    path = tmp / "empty.csv"
    path.write_text("y,p,race\n")
    return _report(tmp, predictions=path)


def _text_score(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    path = _predictions(tmp)
    table = pd.read_csv(path)
    table["p"] = table["p"].astype(object)
    table.loc[7, "p"] = "high"
    table.to_csv(path, index=False)
    return _report(tmp, predictions=path)


def _config(tmp: Path, text: str | bytes, name: str = "config.yaml") -> list[str]:
    path = tmp / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return ["train", "--config", str(path), "--output", str(tmp / "run"), "--no-progress"]


def _laughs(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines = ["base: demo-quick", "encoders:", "  notes:", "    name: bow-text", "    options:"]
    lines.append("      a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]")
    lines += [f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return _config(tmp, "\n".join(lines) + "\n")


def _fairvision(tmp: Path, *, change: dict | None = None, corrupt: str | None = None) -> list[str]:
    """A FairVision folder (6 files per split) and a config training on it for one epoch."""
    root = tmp / "FairVision"
    written = write_fairvision(root)
    target = sorted(p for p in written if "/Training/" in p)[2]
    if change:
        np.savez(target, **{**written[target], **change})
    if corrupt:  # flip bytes inside a stored member: its CRC check fails when it is read in training
        with zipfile.ZipFile(target) as archive:
            info = archive.getinfo(f"{corrupt}.npy")
        data = bytearray(Path(target).read_bytes())
        start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 20
        data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
        Path(target).write_bytes(bytes(data))
    (tmp / "target.txt").write_text(target)
    text = f"""
data: {{source: fairvision, fairvision: {{root: {root}}}, modalities: [fundus, oct], attributes: [race]}}
encoders:
  fundus: {{name: small-cnn-2d, options: {{in_channels: 1, channels: [4]}}}}
  oct: {{name: slicewise-oct, options: {{slice_encoder: small-cnn-2d}}}}
fusion: {{fusion_dim: 8, num_heads: 2, num_layers: 1}}
trainer: {{epochs: 1, batch_size: 4}}
evaluation: {{n_boot: 0}}
"""
    return _config(tmp, text)


def _nan_fundus(tmp: Path) -> dict:
    fundus = np.full((12, 12), 0.5, dtype=np.float32)
    fundus[2, 5] = np.nan
    return {"slo_fundus": fundus}


TINY = Path(__file__).parents[1] / "tiny.yaml"


def _evaluate(tmp: Path, checkpoint: Path, output: Path) -> list[str]:
    return ["evaluate", "--config", str(TINY), "--checkpoint", str(checkpoint), "--output", str(output)]


def _text_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    path = tmp / "notes.txt"
    path.write_text("epoch 3: auc 0.91\n")
    return _evaluate(tmp, path, tmp / "eval")


def _fake_run(tmp: Path) -> Path:
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"model": {}}, run / "checkpoints" / "best.pt")
    return run


def _evaluate_into_run(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    run = _fake_run(tmp)
    return _evaluate(tmp, run / "checkpoints" / "best.pt", run)


def _evaluate_over_results(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    run = _fake_run(tmp)
    (tmp / "eval").mkdir()
    (tmp / "eval" / "metrics.json").write_text("{}\n")
    return _evaluate(tmp, run / "checkpoints" / "best.pt", tmp / "eval")


def _resume_damaged(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    run = _fake_run(tmp)
    (run / "checkpoints" / "checkpoint_epoch=2.pt").write_bytes(b"\x00" * 10)  # killed before its record
    return ["train", "--config", str(TINY), "--output", str(run), "--resume"]


# issue 24 ------------------------------------------------------------------------------------------
class Pickled:
    """Not a tensor: a weights-only load refuses a file holding it."""


def _recorded_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A checkpoint written with its record, then changed inside a tensor (it still loads)."""
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    best = run / "checkpoints" / "best.pt"
    save_checkpoint({"model": {"w": torch.linspace(0, 1, 64)}}, best)
    data = bytearray(best.read_bytes())
    start = data.index(torch.linspace(0, 1, 64).numpy().tobytes())  # the tensor's bytes in the archive
    data[start + 40 : start + 44] = bytes(b ^ 0x01 for b in data[start + 40 : start + 44])
    best.write_bytes(bytes(data))
    torch.load(best, weights_only=True)  # readable: only the record can tell
    return _evaluate(tmp, best, tmp / "eval")


def _nan_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    weights = torch.zeros(3)
    weights[1] = float("nan")
    torch.save({"model": {"fusion.weight": weights}}, tmp / "nan.pt")
    return _evaluate(tmp, tmp / "nan.pt", tmp / "eval")


def _pickled_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Pickled()}, tmp / "pickled.pt")
    return _evaluate(tmp, tmp / "pickled.pt", tmp / "eval")


def _weights(tmp: Path, path: Path) -> list[str]:
    return [
        "train",
        "--config",
        str(TINY),
        "--output",
        str(tmp / "run"),
        "--set",
        f"encoders.fundus.weights={path}",
    ]


def _text_weights(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp / "weights.txt").write_text("e = 2.718\n")
    return _weights(tmp, tmp / "weights.txt")


def _folder_weights(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp / "weights").mkdir()
    return _weights(tmp, tmp / "weights")


def _pickled_weights(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    torch.save({"w": torch.zeros(1), "note": Pickled()}, tmp / "weights.pt")
    return _weights(tmp, tmp / "weights.pt")


def _manifest_nan(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    rows = [
        {
            "pid": f"p{i}",
            "split": split,
            "label": i % 2,
            "race": "AB"[i // 2 % 2],
            "age": 50.0 + i,
            "bmi": 22.0,
        }
        for split in ("train", "val", "test")
        for i in range(8)
    ]
    table = pd.DataFrame(rows)
    table.loc[5, "age"] = np.nan  # train row 5, id p5
    table.to_csv(tmp / "m.csv", index=False)
    text = f"""
data: {{source: manifest, attributes: [race], manifest: {{path: {tmp / "m.csv"}, id_column: pid, tabular: {{vitals: [age, bmi]}}}}}}
encoders: {{vitals: {{name: tabular-mlp, options: {{in_features: 2}}}}}}
trainer: {{epochs: 1, batch_size: 4}}
evaluation: {{n_boot: 0}}
"""
    return _config(tmp, text)


CASES = [
    # items 1, 3 and 8: checkpoints and run folders
    Case(
        "evaluate a text file as checkpoint",
        _text_checkpoint,
        r"cannot read checkpoint '{tmp}/notes\.txt': it is a text file, not a file written by torch\.save "
        r"\(it starts with 'epoch 3: auc 0\.9'\)",
    ),
    Case(
        "evaluate into a training run's folder",
        _evaluate_into_run,
        r"output folder '{tmp}/run' is a training run's folder: an evaluation must not replace that run's "
        r"results; write it to another folder \(the default is <run>/evaluation\)",
    ),
    Case(
        "evaluate over an earlier evaluation",
        _evaluate_over_results,
        r"output folder '{tmp}/eval' already holds results \(metrics\.json\); replace them with --overwrite or "
        r"choose another --output",
    ),
    Case(
        "resume with no intact checkpoint",
        _resume_damaged,
        r"nothing intact to resume in '{tmp}/run/checkpoints': checkpoint_epoch=2\.pt has no record "
        r"checkpoint_epoch=2\.pt\.json \(the run was stopped while writing it\); start the run over with --overwrite",
    ),
    # item 6: the report command and main's error mapping
    Case("report into a read-only folder", _read_only_folder, r"Permission denied: '{tmp}/out/report\.html'"),
    Case("report on a full disk", _disk_full, r"No space left on device: '{tmp}/out/report\.html'"),
    Case(
        "report over an earlier report",
        _existing_report,
        r"--output '{tmp}/out' already holds report\.md; pass --overwrite to replace them, or choose another folder",
    ),
    Case(
        "report with a repeated group column",
        lambda tmp, mp: [*_report(tmp), "--group-columns", "race,race"],
        r"expected distinct column names for --group-columns, got 'race' more than once in 'race,race'",
    ),
    Case(
        "report on cuda without CUDA",
        lambda tmp, mp: _report(tmp, "--device", "cuda"),
        r"--device 'cuda': CUDA is not available on this machine \(torch\.cuda\.is_available\(\) is False\); use 'cpu'",
        skip="CUDA is available here" if torch.cuda.is_available() else None,
    ),
    Case(
        "report on a made-up device",
        lambda tmp, mp: _report(tmp, "--device", "banana"),
        r"expected --device to be a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'banana'",
    ),
    Case(
        "report of a header-only file",
        _header_only,
        r"predictions file '{tmp}/empty\.csv' has a header \(y, p, race\) but no rows",
    ),
    Case(
        "report with a text score",
        _text_score,
        r"expected numeric scores in column 'p' of '{tmp}/preds\.csv', got 'high' in row 7",
    ),
    # item 4: hostile YAML
    Case(
        "config whose aliases expand to a billion values",
        _laughs,
        r"{tmp}/config\.yaml: YAML document expands to more than 100,000 values \(at line 10, through "
        r"aliases/anchors\); refused",
    ),
    Case(
        "config with 5,000 nested brackets",
        lambda tmp, mp: _config(tmp, "trainer: " + "[" * 5000 + "]" * 5000),
        r"{tmp}/config\.yaml: YAML nesting deeper than 64 levels \(at line 1\); refused",
    ),
    # item 8: messages
    Case(
        "config that is not UTF-8",
        lambda tmp, mp: _config(tmp, "# caf\xe9\ntrainer: {epochs: 1}\n".encode("latin-1")),
        r"config file '{tmp}/config\.yaml' is not UTF-8 text: byte 0xe9 at line 1 \(save it as UTF-8\)",
    ),
    Case(
        "a documented synonym",
        lambda tmp, mp: [*_config(tmp, "base: demo-quick\n"), "--set", "trainer.learning_rate=0.1"],
        r"unknown config key `trainer\.learning_rate` \(did you mean 'lr'\?\); known keys in `trainer`: .*",
    ),
    # item 5: data files, found at load time
    Case(
        "glaucoma=2 in one training file",
        lambda tmp, mp: _fairvision(tmp, change={"glaucoma": np.int64(2)}),
        r"file '{target}': key 'glaucoma' has value 2; expected a class index in \[0, 2\) "
        r"\(the documented values of 'glaucoma' are 0 and 1\)",
    ),
    Case(
        "race stored as text in one file",
        lambda tmp, mp: _fairvision(tmp, change={"race": np.str_("1")}),
        r"file '{target}': key 'race' has text value '1'; expected an integer code: 0 \(Asian\), 1 \(Black\), "
        r"2 \(White\), or -1 \(unknown\)",
    ),
    Case(
        "race=1.5 in a training file",
        lambda tmp, mp: _fairvision(tmp, change={"race": np.float64(1.5)}),
        r"file '{target}': key 'race' has value 1\.5; expected an integer code: .*",
    ),
    Case(
        "a corrupt image member hit during training",
        lambda tmp, mp: _fairvision(tmp, corrupt="oct_bscans"),
        r"file '{target}': key 'oct_bscans' is corrupt or truncated \(BadZipFile: Bad CRC-32 for file 'oct_bscans\.npy'\)",
    ),
    Case(
        "a NaN image hit during training",
        lambda tmp, mp: _fairvision(tmp, change=_nan_fundus(tmp)),
        r"file '{target}': key 'slo_fundus' holds nan at index \[2, 5\] \(1 NaN/inf value\(s\)\); "
        r"expected finite image values",
    ),
    # issue 24, item 1: a checkpoint is checked against its record; NaN weights are named
    Case(
        "evaluate a checkpoint changed after it was written",
        _recorded_checkpoint,
        r"checkpoint '{tmp}/run/checkpoints/best\.pt' fails its integrity check against best\.pt\.json: the file "
        r"does not match its SHA-256 record \(damaged or replaced\); refused",
    ),
    Case(
        "evaluate a checkpoint holding NaN",
        _nan_checkpoint,
        r"checkpoint '{tmp}/nan\.pt' holds 1 NaN/inf value\(s\) in 'fusion\.weight'; expected finite weights "
        r"\(the file is damaged, or training diverged: lower trainer\.lr\)",
    ),
    # item 2: several processes, refused before any worker starts
    Case(
        "several processes with a misspelt key",
        lambda tmp, mp: [
            *_config(tmp, "base: demo-quick\n"),
            "--nproc-per-node",
            "2",
            "--set",
            "trainer.learning_rate=1",
        ],
        r"unknown config key `trainer\.learning_rate` \(did you mean 'lr'\?\); known keys in `trainer`: .*",
    ),
    Case(
        "several processes with a missing config file",
        lambda tmp, mp: [
            "train",
            "--nproc-per-node",
            "2",
            "--config",
            str(tmp / "no.yaml"),
            "--output",
            str(tmp / "run"),
        ],
        r"config file '{tmp}/no\.yaml' does not exist",
    ),
    Case(
        "zero processes",
        lambda tmp, mp: [*_config(tmp, "base: demo-quick\n"), "--nproc-per-node", "0"],
        r"expected --nproc-per-node to be an integer >= 1, got 0",
    ),
    Case(
        "an abbreviated --nproc-per-node",
        lambda tmp, mp: [*_config(tmp, "base: demo-quick\n"), "--nproc", "2"],
        r"write --nproc-per-node in full \(an abbreviation of it cannot be passed on to the workers\)",
    ),
    # item 3: weights files and pickled checkpoints
    Case(
        "encoder weights that are a text file",
        _text_weights,
        r"config key `encoders\.fundus\.weights`: cannot read weights file '{tmp}/weights\.txt': it is a text "
        r"file, not a file written by torch\.save \(it starts with 'e = 2\.718\\n'\)",
    ),
    Case(
        "encoder weights that are a folder",
        _folder_weights,
        r"config key `encoders\.fundus\.weights`: expected `weights\.path` to be a file, got '{tmp}/weights', "
        r"which is a folder",
    ),
    Case(
        "encoder weights holding pickled objects",
        _pickled_weights,
        r"config key `encoders\.fundus\.weights`: cannot read weights file '{tmp}/weights\.pt': it holds pickled "
        r"Python objects besides tensors \(.*Pickled\), which a safe \(weights-only\) load refuses; nothing in "
        r"it was run; save the tensors alone, e\.g\. torch\.save\(model\.state_dict\(\), path\)",
    ),
    Case(
        "evaluate a checkpoint holding pickled objects",
        _pickled_checkpoint,
        r"cannot read checkpoint '{tmp}/pickled\.pt': it holds pickled Python objects besides tensors "
        r"\(.*Pickled\), which a safe \(weights-only\) load refuses; nothing in it was run; .*",
    ),
    # item 4: an empty config
    Case(
        "an empty config file",
        lambda tmp, mp: _config(tmp, "# nothing yet\n"),
        r"config file '{tmp}/config\.yaml' is empty \(no keys, comments at most\); write the sections to set, "
        r"e\.g\. `base: demo-quick`, or `\{\}` to run every default",
    ),
    # item 7: hints
    Case(
        "a MultiFair option outside method.options",
        lambda tmp, mp: [*_config(tmp, "base: demo-quick\n"), "--set", "method.fairnes_weight=1"],
        r"unknown config key `method\.fairnes_weight` \(did you mean `method\.options\.fairness_weight`\?\); "
        r"known keys in `method`: name, options \(a method's settings go in `method\.options`\)",
    ),
    Case(
        "a misspelt MultiFair option",
        lambda tmp, mp: [*_config(tmp, "base: demo-quick\n"), "--set", "method.options.fairnes_weight=1"],
        r"config section `method\.options`: unknown MultiFairConfig key 'fairnes_weight'; known: .* "
        r"\(did you mean 'fairness_weight'\?\)",
    ),
    Case(
        "a misspelt post-processing name",
        lambda tmp, mp: [*_config(tmp, "base: demo-quick\n"), "--set", "postprocessing.name=threshold"],
        r"config key `postprocessing\.name`: unknown postprocessing method 'threshold' \(did you mean "
        r"'threshold-optimizer'\?\); known postprocessing methods: (\S+, )*threshold-optimizer(, \S+)*",
    ),
    Case(
        "one attribute written without brackets",
        lambda tmp, mp: [*_config(tmp, "base: demo-quick\n"), "--set", "data.attributes=race"],
        r"config key `data\.attributes`: expected a list of a string, got 'race' \(write \[race\] for a list of "
        r"one item\)",
    ),
    Case(
        "an unknown race in a training file",
        lambda tmp, mp: _fairvision(tmp, change={"race": np.int64(-1)}),
        r"FairVision\[train\]: {target} has an unknown value \(-1\) for attribute 'race' \(1 of 6 rows have "
        r"unknown values: race: 1\); set the config key `data\.unknown` to 'drop' to remove them \(counted and "
        r"reported\) or to 'keep' to make them a group \(in Python: the `unknown` argument\)",
    ),
    Case(
        "a NaN in a manifest column",
        _manifest_nan,
        r"manifest\[train\] {tmp}/m\.csv: p5: tabular column 'age' has nan; expected a finite number",
    ),
]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_half_written_file(case, tmp_path, monkeypatch, capsys):
    if case.skip:
        pytest.skip(case.skip)
    argv = case.build(tmp_path, monkeypatch)
    before = _tree(tmp_path)
    code = main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    prefix = f"multifair {argv[0]}: error: "
    assert lines[0].startswith(prefix)
    target = (tmp_path / "target.txt").read_text() if (tmp_path / "target.txt").exists() else ""
    pattern = case.message.replace("{tmp}", str(tmp_path).replace(".", r"\.")).replace(
        "{target}", target.replace(".", r"\.")
    )
    assert re.fullmatch(pattern, lines[0][len(prefix) :]), f"{lines[0][len(prefix) :]!r} !~ {pattern!r}"
    after = _tree(tmp_path)
    assert not [name for name in after if name.endswith(".tmp")], "a temporary file was left behind"
    for name, data in before.items():  # nothing that existed was changed
        assert after.get(name) == data, f"{name} was changed"
    for name in after.keys() - before.keys():  # anything new is complete: no report, metrics or results
        assert Path(name).name not in (*REPORT_FILES, "metrics.json", "predictions.csv"), name


def test_overwrite_replaces_an_earlier_report(tmp_path, capsys):
    argv = _existing_report(tmp_path, pytest.MonkeyPatch())
    assert main([*argv, "--overwrite"]) == 0
    assert (tmp_path / "out" / "report.md").read_text() != "an earlier audit\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(REPORT_FILES)


def test_errors_from_dataloader_workers_keep_only_the_original_message():
    from monai_multifair.errors import MultiFairError

    wrapped = MultiFairError(
        "Caught MultiFairError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "monai_multifair.errors.MultiFairError: file 'a.npz': key 'slo_fundus' holds nan at index [0, 0]\n"
    )
    assert one_line(wrapped) == "file 'a.npz': key 'slo_fundus' holds nan at index [0, 0]"
    assert one_line(KeyError("missing key 'x'")) == "missing key 'x'"
    assert one_line(OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")) == (
        "Invalid cross-device link: 'a' -> 'b'"
    )
    assert one_line(ValueError("two\nlines")) == "two lines"


def test_an_image_of_another_size_is_trained_with_one_warning(tmp_path, caplog, capsys):
    """Issue 24, item 5: with `image_size`, a 10x32 fundus among 12x12 ones is resized, and said once."""
    argv = _fairvision(tmp_path, change={"slo_fundus": np.zeros((10, 32), np.uint8)})
    target = (tmp_path / "target.txt").read_text()
    with caplog.at_level("WARNING", logger="monai_multifair.data"):
        assert main([*argv, "--set", "data.fairvision.image_size=[12, 12]"]) == 0
    odd = [r.getMessage() for r in caplog.records if "at another size" in r.getMessage()]
    assert odd == [
        f"FairVision[train]: 1 of 6 file(s) store key 'slo_fundus' (fundus) at another size (H, W) than the 5 "
        f"others' (12, 12), the first '{target}' at (10, 32); every image is resized to `image_size` [12, 12], "
        "which distorts these (check those files)"
    ]
    assert "test metrics" in capsys.readouterr().out


def test_the_workers_command_line_is_the_command_without_nproc_per_node():
    from monai_multifair.cli.launcher import worker_argv

    assert worker_argv(["train", "--nproc-per-node", "4", "--config", "demo"]) == [
        "train",
        "--config",
        "demo",
    ]
    assert worker_argv(["train", "--config", "demo", "--nproc-per-node=4"]) == ["train", "--config", "demo"]
