"""A tiny synthetic two-modality cohort for the example bundle (runs on a CPU in seconds).

Each record has a 1x16x16 ``fundus`` image, an 8-value ``vitals`` vector, a binary ``label`` and a
``group`` id in ``[0, 3)`` (shares 50/30/20 %). The label is visible in both modalities, but the image
carries no signal for group 1 and the vitals none for group 2: the two modalities favour different
groups, the situation MultiFair addresses (see the project's docs/concepts/method.md).
"""

from __future__ import annotations

import torch

GROUP_SHARES = (0.5, 0.3, 0.2)


def make_records(n: int = 256, seed: int = 0, image_size: int = 16, vitals: int = 8) -> list[dict]:
    """Return ``n`` records ``{"fundus", "vitals", "label", "group", "present"}``.

    Args:
        n: number of records (>= 1).
        seed: seed of the generator (the cohort is the same for the same seed).
        image_size: side of the square image.
        vitals: length of the vitals vector.

    Returns:
        A list of dicts of tensors: ``fundus`` ``[1, S, S]`` float, ``vitals`` ``[V]`` float, ``label``
        and ``group`` long scalars, ``present`` ``[2]`` bool (all True: no modality is missing).

    Example:
        >>> records = make_records(8, seed=1)
        >>> records[0]["fundus"].shape, sorted(records[0])
        (torch.Size([1, 16, 16]), ['fundus', 'group', 'label', 'present', 'vitals'])
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"expected `n` to be an integer >= 1, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    groups = torch.multinomial(torch.tensor(GROUP_SHARES), n, replacement=True, generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    sign = labels.float() * 2 - 1
    # image: a bright centre blob for positives, absent for group 1
    yy, xx = torch.meshgrid(torch.arange(image_size), torch.arange(image_size), indexing="ij")
    centre = (image_size - 1) / 2
    blob = torch.exp(-((yy - centre) ** 2 + (xx - centre) ** 2) / (2 * (image_size / 5) ** 2))
    image_signal = 0.5 * (sign * (groups != 1).float()).view(n, 1, 1, 1) * blob
    fundus = image_signal + torch.randn(n, 1, image_size, image_size, generator=g)
    # vitals: a shifted mean for positives, absent for group 2
    vitals_signal = (sign * (groups != 2).float()).unsqueeze(1) * 0.35
    vitals_values = vitals_signal + torch.randn(n, vitals, generator=g)
    present = torch.ones(2, dtype=torch.bool)
    return [
        {
            "fundus": fundus[i],
            "vitals": vitals_values[i],
            "label": labels[i],
            "group": groups[i],
            "present": present,
        }
        for i in range(n)
    ]
