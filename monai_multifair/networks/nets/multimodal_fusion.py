"""A MONAI-style multimodal classifier: per-modality encoders, attention fusion, classification head."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.networks.blocks.fusion import AttentionFusion, DemographicToken
from monai_multifair.plugins import create_encoder

__all__ = ["MultimodalFusionClassifier", "build_encoder"]

#: How a caller chooses an encoder: a module, a registry name, or ``{"name": ..., **options}`` (not to be
#: confused with :class:`monai_multifair.plugins.EncoderSpec`, the registry's record of an encoder).
EncoderChoice = nn.Module | str | Mapping[str, object]


def build_encoder(spec: EncoderChoice, modality: str = "encoder") -> nn.Module:
    """Return ``spec`` if it is a module, else build it with the encoder plugin registry.

    Args:
        spec: an ``nn.Module``; an encoder name (``"densenet121-2d"``); or a mapping
            ``{"name": ..., **options}`` passed to ``monai_multifair.plugins.create_encoder``.
        modality: the modality name, used in error messages.

    Returns:
        The encoder module.

    Example:
        >>> build_encoder(torch.nn.Identity()).__class__.__name__
        'Identity'
    """
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping):
        if "name" not in spec:
            raise MultiFairError(
                f"expected `encoders[{modality!r}]` mapping to have a 'name' key, got keys {sorted(spec)}"
            )
        options = {str(k): v for k, v in spec.items() if k != "name"}
        name = spec["name"]
        if not isinstance(name, str):
            raise MultiFairError(f"expected `encoders[{modality!r}]['name']` to be a string, got {name!r}")
    else:
        raise MultiFairError(
            f"expected `encoders[{modality!r}]` to be an nn.Module, an encoder name or a "
            f"{{'name': ..., **options}} mapping, got {type(spec).__name__}"
        )
    return create_encoder(name, **options)


class MultimodalFusionClassifier(nn.Module):
    """Per-modality encoders ``E_m``, attention fusion over modality tokens and a classification head.

    ``h_m = E_m(x_m)`` is the modality boundary where MultiFair acts (``docs/concepts/method.md``, "The model");
    the fusion projects each ``h_m`` to width ``d`` (``fusion_dim``), runs multi-head self-attention
    over the ``M`` modality tokens (:class:`~monai_multifair.networks.blocks.AttentionFusion`), pools
    the present tokens and the head ``Linear(d, head_hidden) -> ReLU -> Dropout -> Linear(head_hidden, C)``
    returns logits ``[B, C]``, so any MONAI/torch classification loss applies.

    For :class:`~monai_multifair.handlers.MultiFairHandler` the network exposes ``encoders`` (an
    ``nn.ModuleDict``; their forward outputs are the hooked ``h_m``), ``feature_dims`` and
    ``fused_head`` (the final ``nn.Linear``, whose weight is ``W_F`` of the direction loss; its input
    width ``head_hidden`` is the guide heads' hidden width).

    **Demographic token** (``demographic_token=True``): a learned embedding of the group id ``a`` joins
    the fusion as one more token, as in the paper's method figure. ``docs/benchmarks.md`` measured it as
    the largest gain on the embedded cohort, but the model then **needs the group attribute at inference**
    (``forward(..., groups=...)`` is required in evaluation too): use it only where the attribute is
    legitimately available when the model is deployed.

    **Missing modalities**: pass ``present`` (``[B, M]`` bool, modality order). A missing modality's
    token is zeroed, masked in attention (``key_padding_mask``) and left out of the pooling, so its input
    (zeros, garbage, NaN) has no effect on the output.

    Args:
        encoders: modality name -> encoder. Each value is an ``nn.Module`` returning ``[B, F_m, ...]``
            features, an encoder name from the plugin registry (``"densenet121-2d"``) or a mapping
            ``{"name": ..., **options}`` built with ``monai_multifair.plugins.create_encoder``.
            Text encoders from the registry take token ids ``[B, L]``.
        num_classes: number of classes ``C``.
        fusion_dim: shared token width ``d`` (research code: 128 FairVision, 256 FairVLMed).
        num_heads: attention heads (4 / 8); must divide ``fusion_dim``.
        num_layers: transformer layers of the fusion (2 / 3).
        dropout: dropout in the fusion and the head.
        head_hidden: input width of the fused output layer; default ``fusion_dim``.
        demographic_token: add the learned group token to the fusion (off by default).
        num_groups: number of group ids ``K``; required with ``demographic_token=True``.
        feature_dims: width ``F_m`` (product of the non-batch dims) of each encoder output; default
            each encoder's ``out_features`` attribute.
        validate_args: check ``groups`` range and that every sample has a present modality or token
            (these checks read tensors on the host; switch off for sync-free GPU steps).

    Example:
        >>> from torch import nn
        >>> net = MultimodalFusionClassifier(
        ...     {"image": nn.Linear(16, 8), "text": nn.Linear(5, 4)},
        ...     num_classes=2, fusion_dim=8, num_heads=2, num_layers=1,
        ...     feature_dims={"image": 8, "text": 4})
        >>> net({"image": torch.randn(3, 16), "text": torch.randn(3, 5)}).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        encoders: Mapping[str, EncoderChoice],
        num_classes: int,
        fusion_dim: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.1,
        head_hidden: int | None = None,
        demographic_token: bool = False,
        num_groups: int | None = None,
        feature_dims: Mapping[str, int] | None = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(encoders, Mapping) or len(encoders) == 0:
            raise MultiFairError(
                f"expected `encoders` to be a non-empty mapping of modality name -> encoder, got {encoders!r}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise MultiFairError(f"expected `num_classes` to be an integer >= 2, got {num_classes!r}")
        for name in encoders:
            if not isinstance(name, str) or not name or "." in name:
                raise MultiFairError(
                    f"expected modality names in `encoders` to be non-empty strings without '.', got {name!r}"
                )
        self.encoders = nn.ModuleDict({name: build_encoder(spec, name) for name, spec in encoders.items()})
        self.modality_names: tuple[str, ...] = tuple(encoders)
        self.feature_dims: dict[str, int] = self._resolve_feature_dims(feature_dims)
        self.num_classes = num_classes
        self.validate_args = bool(validate_args)

        if demographic_token:
            if num_groups is None:
                raise MultiFairError(
                    "expected `num_groups` to be set when `demographic_token=True`, got None"
                )
            self.demographic = DemographicToken(num_groups, fusion_dim)
        else:
            self.demographic = None
        self.num_groups = num_groups
        self.fusion = AttentionFusion(
            self.feature_dims,
            fusion_dim=fusion_dim,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
        )
        head_hidden = fusion_dim if head_hidden is None else head_hidden
        if isinstance(head_hidden, bool) or not isinstance(head_hidden, int) or head_hidden < 1:
            raise MultiFairError(f"expected `head_hidden` to be an integer >= 1, got {head_hidden!r}")
        self.head = nn.Sequential(
            nn.Linear(fusion_dim, head_hidden),
            nn.ReLU(),
            nn.Dropout(float(dropout)),
            nn.Linear(head_hidden, num_classes),
        )

    def _resolve_feature_dims(self, feature_dims: Mapping[str, int] | None) -> dict[str, int]:
        given = dict(feature_dims or {})
        for name in given:
            if name not in self.encoders:
                raise MultiFairError(
                    f"unknown modality {name!r} in `feature_dims`; known: {', '.join(self.modality_names)}"
                    + close_match_hint(name, self.modality_names)
                )
        dims = {}
        for name, encoder in self.encoders.items():
            width = given.get(name, getattr(encoder, "out_features", None))
            if width is None:
                raise MultiFairError(
                    f"cannot tell the output width of encoder {name!r} ({type(encoder).__name__}): it has no "
                    f"`out_features` attribute; pass `feature_dims={{{name!r}: ...}}`"
                )
            dims[name] = int(width)
        return dims

    @property
    def fused_head(self) -> nn.Linear:
        """The fused output layer ``Linear(head_hidden, C)`` (``W_F`` of the direction loss)."""
        return self.head[-1]

    @property
    def uses_groups(self) -> bool:
        """Whether ``forward`` needs ``groups`` (the demographic token is on)."""
        return self.demographic is not None

    def forward(
        self, inputs: Mapping[str, Tensor], groups: Tensor | None = None, present: Tensor | None = None
    ) -> Tensor:
        """Classify a multimodal batch.

        Args:
            inputs: modality name -> input batch (``[B, ...]``); keys other than the modality names are
                ignored.
            groups: ``[B]`` integer group ids in ``[0, num_groups)``; required when the demographic
                token is on, ignored otherwise.
            present: optional ``[B, M]`` bool availability mask in ``modality_names`` order.

        Returns:
            Logits ``[B, C]``.
        """
        if not isinstance(inputs, Mapping):
            raise MultiFairError(
                f"expected `inputs` to be a mapping of modality name -> tensor, got {type(inputs).__name__}"
            )
        for name in self.modality_names:
            if name not in inputs:
                raise MultiFairError(
                    f"missing modality {name!r} in `inputs` (keys: {sorted(map(str, inputs))})"
                    + close_match_hint(name, [str(k) for k in inputs])
                )
        features = [self.encoders[name](inputs[name]) for name in self.modality_names]
        batch = features[0].shape[0]
        if present is not None and tuple(present.shape) != (batch, len(self.modality_names)):
            raise MultiFairError(
                f"expected `present` of shape ({batch}, {len(self.modality_names)}) (batch, modalities "
                f"{self.modality_names}), got {tuple(present.shape)}"
            )
        extra = []
        if self.demographic is not None:
            if groups is None:
                raise MultiFairError(
                    "expected `groups` (group ids [B]) because the network has a demographic token; it needs "
                    "the group attribute in training and at inference"
                )
            groups = groups.reshape(-1).to(features[0].device)
            if self.validate_args:
                self._check_groups(groups, batch)
            extra.append(self.demographic(groups))
        elif present is not None and self.validate_args and not bool(present.any(dim=1).all()):
            raise MultiFairError(
                "expected every sample to have at least one present modality in `present`, got a row of all False"
            )
        return self.head(self.fusion(features, present=present, extra_tokens=extra))

    def _check_groups(self, groups: Tensor, batch: int) -> None:
        if groups.shape[0] != batch:
            raise MultiFairError(
                f"expected `groups` with {batch} entries (the batch size), got {groups.shape[0]}"
            )
        if groups.is_floating_point() and not bool(torch.equal(groups, groups.round())):
            raise MultiFairError("expected `groups` to hold integer group ids, got non-integer values")
        low, high = int(groups.min()), int(groups.max())
        if low < 0 or high >= self.num_groups:
            raise MultiFairError(
                f"expected `groups` in [0, {self.num_groups}) (num_groups={self.num_groups}), "
                f"got values in [{low}, {high}]"
            )
