"""ES-AUC against the numbers FairVision's own ``equity_scaled_AUC`` gives on fixed inputs
(``tests/fixtures/golden/fairvision_es_auc.json`` says where they come from)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monai_multifair.metrics import equity_scaled_auc

GOLDEN = json.loads((Path(__file__).parents[1] / "fixtures/golden/fairvision_es_auc.json").read_text())


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: f"seed{c['seed']}")
def test_es_auc_equals_fairvisions(case):
    value = equity_scaled_auc(
        np.array(case["labels"]),
        np.array(case["scores"]),
        sensitive_features=np.array(case["groups"]),
        alpha=case["alpha"],
    )
    assert value == pytest.approx(case["es_auc"], rel=1e-12, abs=1e-12)
