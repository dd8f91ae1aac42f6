"""``erm``: plain training, empirical risk minimisation of the cross-entropy (Vapnik, 1992).

The baseline every fairness method is compared with: the same network, data, optimiser and evaluation,
no change to the loss, the sampling or the gradients. MEDFAIR (Zong et al., ICLR 2023) found that on
medical imaging no mitigation method beat it reliably, so every comparison needs it.
"""

from __future__ import annotations

from monai_multifair.methods.base import FairnessMethod
from monai_multifair.plugins.hookspecs import hookimpl
from monai_multifair.plugins.method_spec import MethodSpec

__all__ = ["ERM", "ERM_SPEC"]


class ERM(FairnessMethod):
    """Plain training: the trainer's cross-entropy, shuffled batches, nothing else."""

    name = "erm"

    def describe(self) -> str:
        return "plain training (ERM)"


ERM_SPEC = MethodSpec(
    name="erm",
    factory=ERM,
    options=None,
    description="plain training: empirical risk minimisation of the cross-entropy (the baseline)",
)


@hookimpl
def multifair_methods() -> list[MethodSpec]:
    """This module's method, registered as a built-in plugin (``monai_multifair.plugins.builtin``)."""
    return [ERM_SPEC]
