"""Pretrained weights and freezing for any encoder: a local state dict, key renaming, a load report.

These work on every ``nn.Module`` (the MONAI encoders of the registry, plugin encoders, the
``transformers`` ones), so a config can give any encoder ``weights:``, ``freeze:`` and ``trainable:``
(see ``docs/howto/pretrained.md``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from monai_multifair.errors import MultiFairError

__all__ = [
    "WeightsReport",
    "freeze_parameters",
    "load_encoder_weights",
    "load_tensors_file",
    "map_state_dict_keys",
    "read_state_dict",
]

_SHOWN = 8  # keys listed in messages


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


@dataclasses.dataclass(frozen=True)
class WeightsReport:
    """What :func:`load_encoder_weights` did.

    Attributes:
        path: the file read.
        loaded: encoder keys that received a tensor from the file.
        missing: encoder keys the file (after renaming) does not provide; they keep their initial values.
        unexpected: file keys (after renaming) that are not keys of the encoder; ignored.
        excluded: file keys dropped by ``exclude`` before loading.
    """

    path: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    excluded: tuple[str, ...]

    def summary(self) -> str:
        """One line: counts, and the first missing and unexpected keys."""
        text = f"{self.path}: loaded {len(self.loaded)} tensors"
        if self.missing:
            text += f"; {len(self.missing)} encoder keys missing from the file ({_listing(self.missing)})"
        if self.unexpected:
            text += f"; {len(self.unexpected)} file keys unused ({_listing(self.unexpected)})"
        if self.excluded:
            text += f"; {len(self.excluded)} file keys excluded"
        return text


def _unreadable_reason(path: Path, error: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, as a clause for one line."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in text:
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
        held = f" ({', '.join(names[:3])})" if names else ""
        return (
            f"it holds pickled Python objects besides tensors{held}, which a safe (weights-only) load refuses; "
            "nothing in it was run; save the tensors alone, e.g. torch.save(model.state_dict(), path)"
        )
    with path.open("rb") as file:
        head = file.read(16)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # neither torch's zip format nor a legacy pickle
        start = head.decode("utf-8", errors="ignore")  # a character cut at byte 16 is dropped
        if (
            head
            and len(start.encode()) >= len(head) - 3
            and all(c.isprintable() or c.isspace() for c in start)
        ):
            return f"it is a text file, not a file written by torch.save (it starts with {start!r})"
        if not head:
            return "it is empty, not a file written by torch.save"
        return f"it is not a file written by torch.save (it starts with the bytes {head[:8]!r})"
    first = (text.strip().splitlines() or [""])[0]
    detail = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return f"it is damaged or truncated ({detail})"


def load_tensors_file(
    path: str | os.PathLike, *, what: str, map_location: str | torch.device = "cpu"
) -> object:
    """``torch.load(path, weights_only=True)`` whose failures are one line naming ``what`` and the file.

    A weights-only load never runs code from the file; a file holding other pickled objects is refused
    with what it holds (torch's own message suggests ``weights_only=False``, which would run that code).

    Args:
        path: an existing file (the caller says what it expected when it is missing).
        what: what the file is, for the message (``"weights file"``, ``"checkpoint"``).
        map_location: where tensors are loaded.

    Raises:
        MultiFairError: ``cannot read <what> '<path>': <reason>`` -- a text or foreign file, pickled
            Python objects, a damaged or truncated file.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # re-raised below as one line naming the file
        # a text or foreign file fails inside the (weights-only) unpickler with whatever it tripped on
        # (KeyError of an opcode byte, IndexError, UnpicklingError, EOFError...)
        raise MultiFairError(f"cannot read {what} {str(path)!r}: {_unreadable_reason(path, error)}") from None


def _expect_file(path: Path, name: str) -> None:
    if path.is_dir():
        raise MultiFairError(f"expected {name} to be a file, got {str(path)!r}, which is a folder")
    if not path.is_file():
        raise MultiFairError(f"expected {name} to be a file, got {str(path)!r} (it does not exist)")


def read_state_dict(path: str | os.PathLike, key: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path``, read with ``torch.load(weights_only=True)`` on the CPU.

    Args:
        path: a file written by ``torch.save`` (``.pt``, ``.pth``, ``.bin``).
        key: the entry holding the state dict when the file holds a dict of several things (e.g.
            ``"state_dict"``, ``"model"``); ``None``: the file is the state dict itself. Dots go down
            nested dicts (``"model.encoder"``).

    Raises:
        MultiFairError: the file is missing or not a torch file, holds something else than tensors
            (``weights_only`` refuses arbitrary pickles), or ``key`` is absent (the message lists the
            entries present and suggests one that holds tensors).
    """
    path = Path(path)
    _expect_file(path, "`weights.path`")
    content = load_tensors_file(path, what="weights file")
    where = f"the file {str(path)!r}"
    if key is not None:
        for part in key.split("."):
            if not isinstance(content, Mapping) or part not in content:
                present = sorted(map(str, content)) if isinstance(content, Mapping) else []
                raise MultiFairError(
                    f"expected `weights.key` {key!r} to name an entry of {str(path)!r}, but {where} has no "
                    f"{part!r}; entries: {_listing(present) or 'none'}"
                )
            content = content[part]
            where = f"entry {part!r} of {str(path)!r}"
    if not isinstance(content, Mapping) or not content:
        raise MultiFairError(
            f"expected {where} to be a non-empty state dict (names -> tensors), got {type(content).__name__}"
        )
    non_tensor = [str(k) for k, v in content.items() if not isinstance(v, torch.Tensor)]
    if non_tensor:
        holders = [str(k) for k, v in content.items() if isinstance(v, Mapping)]
        hint = (
            f"; set `weights.key` to the entry holding the tensors (one of {_listing(holders)})"
            if holders
            else ""
        )
        raise MultiFairError(
            f"expected {where} to map names to tensors, but {len(non_tensor)} entries are not tensors "
            f"({_listing(non_tensor)}){hint}"
        )
    return {str(k): v for k, v in content.items()}


def map_state_dict_keys(
    state: Mapping[str, torch.Tensor],
    prefix_map: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename and drop keys of a state dict.

    A key starting with a prefix of ``exclude`` is dropped. Otherwise the *longest* matching prefix of
    ``prefix_map`` is replaced by its value (``{"module.": ""}`` strips DDP's prefix, ``{"": "net."}``
    prepends one); keys matching none are kept as they are.

    Returns:
        ``(renamed state, dropped keys)``.

    Raises:
        MultiFairError: two keys are renamed to the same name.

    Example:
        >>> import torch
        >>> state = {"module.conv.weight": torch.zeros(1), "module.fc.bias": torch.zeros(1)}
        >>> renamed, dropped = map_state_dict_keys(state, {"module.": "net."}, exclude=["module.fc."])
        >>> sorted(renamed), dropped
        (['net.conv.weight'], ['module.fc.bias'])
    """
    prefixes = sorted((prefix_map or {}).items(), key=lambda item: len(item[0]), reverse=True)
    renamed: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in state.items():
        if any(key.startswith(prefix) for prefix in exclude):
            dropped.append(key)
            continue
        new = key
        for old, replacement in prefixes:
            if key.startswith(old):
                new = replacement + key[len(old) :]
                break
        if new in renamed:
            raise MultiFairError(
                f"`weights.prefix_map` renames both {origin[new]!r} and {key!r} to {new!r}; make the prefixes "
                "distinct or drop one of them with `weights.exclude`"
            )
        renamed[new] = value
        origin[new] = key
    return renamed, dropped


def load_encoder_weights(
    module: nn.Module,
    path: str | os.PathLike,
    *,
    key: str | None = None,
    prefix_map: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
    strict: bool = True,
) -> WeightsReport:
    """Load a local state dict into ``module`` (an encoder) and report what matched.

    The file is read with :func:`read_state_dict`, its keys renamed with :func:`map_state_dict_keys`,
    then compared with ``module.state_dict()``: a tensor of another shape is always an error; with
    ``strict`` a key missing on either side is an error too (listing them), otherwise the matching
    tensors are loaded and the others reported. A file of which no key matches is always an error
    (loading nothing is never what was meant).

    Args:
        module: the encoder.
        path: the file (``torch.save`` of a state dict, or of a dict holding one: see ``key``).
        key: the entry of the file holding the state dict (e.g. ``"state_dict"``).
        prefix_map: ``{file key prefix: encoder key prefix}``.
        exclude: file key prefixes to drop (e.g. a classifier ``"fc."``).
        strict: every encoder key must be loaded and every file key used.

    Returns:
        A :class:`WeightsReport`.

    Raises:
        MultiFairError: see above; each message names the file, the keys and the shapes.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> src, dst = nn.Linear(2, 3), nn.Sequential(nn.Linear(2, 3))
        >>> torch.save(src.state_dict(), "linear.pt")  # doctest: +SKIP
        >>> load_encoder_weights(dst, "linear.pt", prefix_map={"": "0."}).loaded  # doctest: +SKIP
        ('0.weight', '0.bias')
    """
    state, dropped = map_state_dict_keys(read_state_dict(path, key), prefix_map, exclude)
    own = module.state_dict()
    where = str(path)
    mismatched = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if mismatched:
        first = mismatched[0]
        raise MultiFairError(
            f"weights file {where!r}: {len(mismatched)} tensor(s) have another shape than the encoder's, e.g. "
            f"{first!r}: file {tuple(state[first].shape)}, encoder {tuple(own[first].shape)}; the file was "
            "saved for another architecture or other options (depth, widths, in_channels)"
        )
    loaded = tuple(k for k in own if k in state)
    missing = tuple(k for k in own if k not in state)
    unexpected = tuple(k for k in state if k not in own)
    if not loaded:
        raise MultiFairError(
            f"weights file {where!r}: none of its {len(state)} keys is a key of the encoder "
            f"(file: {_listing(list(state))}; encoder: {_listing(list(own))}); map the prefixes with "
            "`weights.prefix_map`, e.g. {'module.': ''} or {'': 'net.'}"
        )
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"{len(missing)} encoder key(s) missing from the file: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} file key(s) the encoder does not have: {_listing(unexpected)}")
        raise MultiFairError(
            f"weights file {where!r} does not match the encoder with `weights.strict: true`: "
            + "; ".join(parts)
            + " (rename with `weights.prefix_map`, drop with `weights.exclude`, or set `weights.strict: false`)"
        )
    module.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return WeightsReport(
        path=where, loaded=loaded, missing=missing, unexpected=unexpected, excluded=tuple(dropped)
    )


def freeze_parameters(module: nn.Module, trainable: Sequence[str] = ()) -> list[str]:
    """Stop gradients to every parameter of ``module`` except those matching ``trainable``.

    Patterns are shell-style (``fnmatch``) on the parameter names of ``module``
    (``net.layer4.*``, ``model.encoder.layer.11.*``); a matching parameter keeps its ``requires_grad``
    (one the encoder froze itself stays frozen). Buffers, such as BatchNorm running statistics, are
    not parameters: they still update while the network is in training mode.

    Returns:
        The names of the parameters that still require a gradient.

    Raises:
        MultiFairError: a pattern that matches no parameter (the message lists some names).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> freeze_parameters(net, ["1.*"])
        ['1.weight', '1.bias']
    """
    names = [name for name, _ in module.named_parameters()]
    for pattern in trainable:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise MultiFairError(
                f"expected each `trainable` pattern to match a parameter name of the encoder, got {pattern!r}, "
                f"which matches none; names look like {_listing(names)}"
            )
    kept = []
    for name, parameter in module.named_parameters():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in trainable):
            if parameter.requires_grad:
                kept.append(name)
        else:
            parameter.requires_grad_(False)
    return kept
