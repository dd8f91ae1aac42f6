"""Exception types shared across the package.

User-facing errors name the argument, the rule and the value, e.g.
``expected `num_groups` >= 2, got 1``. They subclass ``ValueError`` so callers that catch the
built-in keep working.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Iterator


class MultiFairError(ValueError):
    """A bad input or configuration reported to the user with a clear message."""


_EVERY_RANK = "multifair_on_every_rank"


@contextlib.contextmanager
def raised_on_every_rank() -> Iterator[None]:
    """Mark the errors raised in the block as raised alike by every ``torchrun`` rank (a bad argument or
    config, a decision rank 0 broadcast): the command line then prints them once, on rank 0."""
    try:
        yield
    except Exception as error:
        setattr(error, _EVERY_RANK, True)
        raise


def is_on_every_rank(error: BaseException) -> bool:
    """Whether ``error`` was raised in a :func:`raised_on_every_rank` block."""
    return bool(getattr(error, _EVERY_RANK, False))


#: Names people write for a key that is spelt differently here; spelling similarity alone (difflib)
#: cannot find these. A synonym is offered only when its target is among the valid choices.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "learning_rate": ("lr",),
    "learningrate": ("lr",),
    "lr_rate": ("lr",),
    "base_lr": ("lr",),
    "num_epochs": ("epochs",),
    "n_epochs": ("epochs",),
    "max_epochs": ("epochs",),
    "epoch": ("epochs",),
    "batchsize": ("batch_size",),
    "bs": ("batch_size",),
    "train_batch_size": ("batch_size",),
    "wd": ("weight_decay",),
    "l2": ("weight_decay",),
    "optim": ("optimizer",),
    "mixed_precision": ("amp",),
    "fp16": ("amp",),
    "clip_grad": ("grad_clip",),
    "max_grad_norm": ("grad_clip",),
    "gradient_clipping": ("grad_clip",),
    "gradient_accumulation_steps": ("accumulation_steps",),
    "grad_accum": ("accumulation_steps",),
    "random_seed": ("seed", "random_state"),
    "workers": ("num_workers",),
    "bootstrap": ("n_boot",),
    "n_bootstrap": ("n_boot",),
    "num_bootstrap": ("n_boot",),
    "output_dir": ("dir",),
    "outdir": ("dir",),
    "path": ("dir", "root"),
    "data_dir": ("root",),
    "data_root": ("root",),
    "sensitive_attributes": ("attributes",),
    "sensitive_features": ("attributes",),
    "groups": ("attributes",),
    "label": ("label_key", "label_column"),
    "label_col": ("label_column", "label_key"),
    "target": ("label_key", "label_column"),
    "heads": ("num_heads",),
    "n_heads": ("num_heads",),
    "layers": ("num_layers",),
    "n_layers": ("num_layers",),
    "hidden_dim": ("fusion_dim",),
    "embed_dim": ("fusion_dim", "embedding_dim"),
}


def close_match_hint(value: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``.

    A known synonym (:data:`SYNONYMS`, e.g. ``learning_rate`` -> ``lr``) wins over spelling similarity.

    Example:
        >>> close_match_hint("learning_rate", ["epochs", "lr", "batch_size"])
        " (did you mean 'lr'?)"
        >>> close_match_hint("epoch", ["epochs", "lr"])
        " (did you mean 'epochs'?)"
    """
    match = close_match(value, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""


def close_match(value: str, choices: Iterable[str]) -> str | None:
    """The choice :func:`close_match_hint` would suggest for ``value``, or ``None``.

    Example:
        >>> close_match("fairnes_weight", ["fairness_weight", "ema_decay"])
        'fairness_weight'
    """
    options = [str(c) for c in choices]
    key = str(value).strip().lower().replace("-", "_")
    for synonym in SYNONYMS.get(key, ()):
        if synonym in options:
            return synonym
    match = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
    return match[0] if match else None
