"""The plugin module named by the entry point: monai_multifair calls ``multifair_methods()``."""

from typing import Any

from monai_multifair.plugins import MethodSpec, hookimpl
from multifair_example_methods.focal import FocalLoss, FocalOptions


def focal_search_space(trial: Any) -> dict[str, Any]:
    """What ``multifair compare`` tunes, with the same number of trials as every other method."""
    return {
        "gamma": trial.suggest_float("gamma", 0.0, 5.0),
        "group_balance": trial.suggest_categorical("group_balance", [False, True]),
    }


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """The methods of this plugin; ``method: {name: example-focal, options: {...}}`` builds one."""
    return [
        MethodSpec(
            name="example-focal",
            factory=FocalLoss,
            options=FocalOptions,
            description="example plugin: focal loss, optionally group-balanced (Lin et al., ICCV 2017)",
            search_space=focal_search_space,
        )
    ]
