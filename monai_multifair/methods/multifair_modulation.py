"""``multifair``: dual-level gradient modulation (Zubair et al., "MultiFair", IEEE TMI 2026).

The modulator of :mod:`monai_multifair.core` through :class:`~monai_multifair.handlers.MultiFairHandler`:
per-modality and per-group scaling of the gradients that flow into each encoder, guide heads, the
direction and fairness losses (``docs/concepts/method.md``). Its options are the fields of
:class:`~monai_multifair.core.MultiFairConfig`, presets included: ``default``, ``paper``, ``reference``
(the research code's effective behaviour), ``modality-only`` (the modality level alone: the CGGM-style
modality-balancing baseline, Guo et al., NeurIPS 2024) and ``group-only``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monai_multifair.config.validation import plain
from monai_multifair.core.multifair_config import MultiFairConfig
from monai_multifair.errors import MultiFairError
from monai_multifair.handlers import MultiFairHandler
from monai_multifair.methods.base import FairnessMethod, MethodContext
from monai_multifair.plugins.hookspecs import hookimpl
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = ["MULTIFAIR_SPEC", "MultiFairModulation"]


class MultiFairModulation(FairnessMethod):
    """MultiFair as a training method: one :class:`~monai_multifair.handlers.MultiFairHandler`."""

    name = "multifair"
    metric_prefix = "multifair/"
    audit_statistics = True

    def __init__(self, options: MultiFairConfig | None = None) -> None:
        super().__init__(MultiFairConfig.coerce(options))

    def setup(self, context: MethodContext) -> None:
        super().setup(context)
        self.handler = MultiFairHandler(
            num_classes=context.num_classes,
            num_groups=context.num_groups,
            group_key=context.group_key,
            label_key=context.label_key,
            presence_key=context.presence_key,
            config=self.options,
            stats_interval=context.stats_interval,
            metric_prefix=self.metric_prefix,
            group_labels=context.group_labels,
            process_group=context.process_group,
        )
        # built now, not at Events.STARTED, so that a checkpoint can be restored into it
        self.handler.build(context.network, context.device)

    def train_handlers(self) -> list[Any]:
        self._require_context()
        return [self.handler]

    def describe(self) -> str:
        return f"MultiFair ({self.options.preset} preset)"

    def state_dict(self) -> dict[str, Any]:
        self._require_context()
        return self.handler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._require_context()
        self.handler.load_state_dict(state)


def parse_multifair_options(values: Any, path: str) -> MultiFairConfig:
    """``method.options`` of ``multifair``: the flat :class:`~monai_multifair.core.MultiFairConfig` fields.

    A run config leaves ``validate_args`` off unless it sets it: the run's loaders check the labels,
    group ids and input values when they load the data, so the modulator's per-step value checks
    would only repeat them, at the cost of host synchronisations in every step. (Everywhere else,
    ``MultiFairConfig`` keeps its preset's ``validate_args``.)
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise MultiFairError(
            f"config key `{path}`: expected a mapping of MultiFairConfig fields, got {values!r}"
        )
    checked = {k: plain(v, f"{path}.{k}") for k, v in values.items()}
    checked.setdefault("validate_args", False)
    try:
        return MultiFairConfig.from_dict(checked)
    except MultiFairError as error:
        raise MultiFairError(f"config section `{path}`: {error}") from None


def multifair_search_space(trial: Any) -> dict[str, Any]:
    """The tuning space of ``multifair compare``: the preset, where the modality coefficient acts
    (``modulate``), the method's own rules (balance rule, group-factor rule, fairness-loss form), the
    guide heads' learning rate and the strengths of both levels. Explicit rules override the preset's."""
    return {
        "preset": trial.suggest_categorical("preset", ["default", "paper"]),
        "modulate": trial.suggest_categorical("modulate", ["gradient", "update"]),
        "coefficient_rule": trial.suggest_categorical("coefficient_rule", ["absolute", "signed"]),
        "group_factor_rule": trial.suggest_categorical("group_factor_rule", ["modality", "routing"]),
        "fairness_loss": trial.suggest_categorical("fairness_loss", ["dispersion", "shortfall"]),
        "guide_lr": trial.suggest_float("guide_lr", 1e-5, 3e-3, log=True),
        "modality_scale": trial.suggest_float("modality_scale", 0.8, 1.6),
        "group_strength": trial.suggest_float("group_strength", 0.1, 1.0),
        "fairness_weight": trial.suggest_float("fairness_weight", 0.0, 1.0),
        "fairness_threshold": trial.suggest_float("fairness_threshold", 0.01, 0.1, log=True),
    }


MULTIFAIR_SPEC = MethodSpec(
    name="multifair",
    factory=MultiFairModulation,
    options=MultiFairConfig,
    description="dual-level gradient modulation per modality and group (Zubair et al., IEEE TMI 2026); "
    "presets default, paper, reference, modality-only (CGGM-style), group-only",
    parse_options=parse_multifair_options,
    search_space=multifair_search_space,
)


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """This module's method, registered as a built-in plugin (``monai_multifair.plugins.builtin``)."""
    return [MULTIFAIR_SPEC]
