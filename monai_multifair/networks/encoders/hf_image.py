"""Image encoders through Hugging Face ``transformers`` vision backbones (local folders, hub ids, configs)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import _checks
from monai_multifair.networks.encoders.hf_text import _from_pretrained

__all__ = ["HFImageEncoder", "ImageProcessorTransform", "find_unused_parameters", "processor_settings"]

#: ``pooling="auto"`` per ``model_type``: models whose image-classification head reads the class token
#: (their ``pooler`` is an extra dense layer); every other model uses its own ``pooler_output``.
AUTO_POOLING: dict[str, str] = {"vit": "cls", "deit": "cls"}
POOLINGS = ("auto", "pooler", "cls", "mean")
# PIL resampling codes of the image processors -> torch interpolation modes
_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "bilinear", 5: "bilinear"}


def _size_entry(size: Any, key: str) -> Any:
    if isinstance(size, Mapping):
        return size.get(key)
    return getattr(size, key, None)


def processor_settings(source: str | os.PathLike, **hub: Any) -> dict[str, Any] | None:
    """The image processor's settings (``preprocessor_config.json``) of a model folder or hub id.

    Returns:
        The settings dict, or ``None`` when the model has no image-processor file.
    """
    from transformers.image_processing_utils import ImageProcessingMixin

    try:
        settings, _ = ImageProcessingMixin.get_image_processor_dict(os.fspath(source), **hub)
    except OSError:
        return None
    return dict(settings)


class ImageProcessorTransform(nn.Module):
    """The tensor form of a ``transformers`` image processor, applied to float images in [0, 1].

    With ``x`` in [0, 1] (what the loaders give for ``uint8`` files: ``u / 255``) the processor's input
    is ``u = 255 x``; this module computes what it does to ``u``: resize (``size`` ``{height, width}``,
    or the shorter side to ``shortest_edge``, ConvNeXt's ``crop_pct`` rule, then a centre crop to
    ``crop_size``), ``u * rescale_factor`` (when ``do_rescale``), ``(u - image_mean) / image_std``
    (when ``do_normalize``). A grey image (1 channel) is repeated to the model's channels, as the
    processors' RGB conversion does. Resizing uses ``torch`` interpolation (antialiased bilinear or
    bicubic, as the processor's ``resample`` says), close to but not bit-identical with PIL's; inputs
    already at the target size are not resized.

    Shapes:
        ``[B, C, H, W]`` -> ``[B, num_channels, *target]``.

    Args:
        in_channels: channels ``C`` of the input (1 or ``num_channels``).
        num_channels: channels the model takes.
        image_mean: per-channel mean (``num_channels`` values) or ``None`` for no normalisation.
        image_std: per-channel standard deviation, with ``image_mean``.
        input_scale: factor from [0, 1] inputs to the model's pixel scale before normalisation.
        size: resize target: ``(H, W)``, or ``{"shortest_edge": n}``; ``None`` keeps the input size.
        crop_size: centre crop ``(H, W)`` after the resize, or ``None``.
        crop_pct: ConvNeXt's ratio (resize the shorter side to ``shortest_edge / crop_pct``, then crop
            to ``shortest_edge``, below 384 pixels).
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
    """

    def __init__(
        self,
        in_channels: int,
        num_channels: int,
        image_mean: Sequence[float] | None,
        image_std: Sequence[float] | None,
        input_scale: float = 1.0,
        size: tuple[int, int] | Mapping[str, int] | None = None,
        crop_size: tuple[int, int] | None = None,
        crop_pct: float | None = None,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        self.num_channels = _checks.positive_int(owner, "num_channels", num_channels)
        if self.in_channels not in (1, self.num_channels):
            raise MultiFairError(
                f"{owner}: expected `in_channels` to be 1 (grey, repeated) or the model's {self.num_channels} "
                f"channels, got {in_channels}"
            )
        if (image_mean is None) != (image_std is None):
            raise MultiFairError(f"{owner}: expected `image_mean` and `image_std` to be given together")
        if image_mean is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (image_mean, image_std))
            for name, values in (("image_mean", mean), ("image_std", std)):
                if values.numel() == 1:
                    values = values.expand(self.num_channels)
                if values.numel() != self.num_channels:
                    raise MultiFairError(
                        f"{owner}: expected `{name}` to have one value per model channel ({self.num_channels}), "
                        f"got {values.tolist()}"
                    )
                if name == "image_mean":
                    mean = values
                else:
                    std = values
            if bool((std <= 0).any()):
                raise MultiFairError(f"{owner}: expected `image_std` values > 0, got {std.tolist()}")
            self.register_buffer("mean", mean.reshape(1, -1, 1, 1).clone(), persistent=False)
            self.register_buffer("std", std.reshape(1, -1, 1, 1).clone(), persistent=False)
        else:
            self.mean = self.std = None
        self.input_scale = float(input_scale)
        self.size = size
        self.crop_size = crop_size
        self.crop_pct = crop_pct
        self.interpolation = _checks.choice(
            owner, "interpolation", interpolation, ("bilinear", "bicubic", "nearest")
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the output for an input of ``height`` x ``width``."""
        resized = self._resized_size(height, width)
        return self.crop_size if self.crop_size is not None else resized

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is None:
            return height, width
        if not isinstance(self.size, Mapping):
            return tuple(self.size)  # type: ignore[return-value]
        edge = int(self.size["shortest_edge"])
        if self.crop_pct is not None:
            if edge >= 384:
                return edge, edge
            edge = int(edge / self.crop_pct)
        short, long = min(height, width), max(height, width)
        other = int(edge * long / short)
        return (edge, other) if height <= width else (other, edge)

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        smooth = self.interpolation != "nearest"
        return functional.interpolate(
            x,
            size=size,
            mode=self.interpolation,
            align_corners=False if smooth else None,
            antialias=smooth,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocess ``x`` ``[B, C, H, W]`` in [0, 1] into the model's ``pixel_values``."""
        if x.shape[1] != self.num_channels:
            x = x.expand(-1, self.num_channels, -1, -1)
        x = self._resize(x, self._resized_size(*x.shape[-2:]))
        if self.crop_size is not None:
            height, width = x.shape[-2:]
            crop_h, crop_w = self.crop_size
            if crop_h > height or crop_w > width:
                x = self._resize(x, (max(crop_h, height), max(crop_w, width)))
                height, width = x.shape[-2:]
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            x = x[..., top : top + crop_h, left : left + crop_w]
        x = x * self.input_scale if self.input_scale != 1.0 else x
        if self.mean is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x


def find_unused_parameters(module: nn.Module, loss_of: Any) -> list[str]:
    """Names of the trainable parameters of ``module`` that get no gradient from ``loss_of(module)``.

    Runs one forward and backward pass in evaluation mode (no dropout, no random numbers drawn) and
    clears the gradients it made; the training mode is restored. Where no gradient can be computed
    (inside ``torch.inference_mode``), nothing is reported.
    """
    mode = module.training
    module.eval()
    try:
        with torch.enable_grad():
            loss = loss_of(module)
            if not loss.requires_grad:
                return []
            loss.backward()
    finally:
        module.train(mode)
    unused = []
    for name, parameter in module.named_parameters():
        if parameter.requires_grad and parameter.grad is None:
            unused.append(name)
        parameter.grad = None
    return unused


def _config_size(config: Any) -> tuple[int, int] | None:
    size = getattr(config, "image_size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


class HFImageEncoder(nn.Module):
    """A ``transformers`` vision backbone (ViT, DeiT, Swin, ConvNeXt, DINOv2, CLIP's vision tower, ...)
    pooled into one feature vector per image.

    The model comes from ``model_name_or_path`` (a local folder written by ``save_pretrained``, or a hub
    id that is cached or may be downloaded) through ``AutoConfig``/``AutoModel``; a checkpoint with a
    ``vision_config`` (CLIP and similar image-text models) gives its vision tower. ``config`` (a
    ``PretrainedConfig`` or a dict with ``model_type``) builds a randomly initialised model instead.

    **Preprocessing inside the encoder** (:class:`ImageProcessorTransform`): inputs are float images in
    [0, 1] (the loaders scale ``uint8`` files so); the model's image processor
    (``preprocessor_config.json``) gives the resize, centre crop, rescale and ``image_mean``/``image_std``
    normalisation, applied on the device. ``image_size``/``image_mean``/``image_std`` override it; a
    folder without a processor file needs ``image_mean`` and ``image_std`` (its config's
    ``image_size`` is the resize target). A model built from ``config`` is fed ``x`` as it is
    (resized to the config's ``image_size``) unless ``image_mean``/``image_std`` are given.

    **Pooling**: ``"pooler"`` the model's ``pooler_output`` (Swin/ConvNeXt: global average + norm;
    DINOv2/CLIP: the normalised class token); ``"cls"`` the first token of ``last_hidden_state``;
    ``"mean"`` the mean of ``last_hidden_state`` over tokens (or over the feature map of a CNN);
    ``"auto"`` is ``"cls"`` for ViT and DeiT (what their classification heads read) and ``"pooler"``
    otherwise. Parameters that the pooled features do not depend on (DINOv2's mask token, a ViT pooler
    left unused) are frozen at construction, so every trainable parameter gets a gradient and DDP
    needs no ``find_unused_parameters``.

    Shapes:
        ``x``: ``[B, in_channels, H, W]`` in [0, 1] -> ``h``: ``[B, out_features]`` (the backbone's
        hidden size).

    Args:
        model_name_or_path: local folder or hub id (exclusive with ``config``).
        config: a ``PretrainedConfig`` or a dict with ``model_type`` such as
            ``{"model_type": "vit", "hidden_size": 32, ...}`` (exclusive with ``model_name_or_path``).
        in_channels: channels of the input; 1 (grey fundus, OCT B-scans) is repeated to the model's.
        pooling: ``"auto"``, ``"pooler"``, ``"cls"`` or ``"mean"``.
        image_size: resize inputs to this (int or ``[H, W]``) instead of the processor's size.
        image_mean: normalisation mean per channel (overrides the processor's).
        image_std: normalisation standard deviation per channel (with ``image_mean``).
        local_files_only: never contact the Hub (``None``: the ``transformers`` default, which follows
            ``HF_HUB_OFFLINE``).
        cache_dir: Hugging Face cache folder.

    Raises:
        MultiFairError: both or neither of ``model_name_or_path``/``config``; a model that cannot be
            loaded (the message explains offline use and local folders); a folder without an image
            processor and no ``image_mean``/``image_std``; ``in_channels`` other than 1 or the model's;
            a pooling the model cannot give.

    Examples:
        >>> enc = HFImageEncoder(config={"model_type": "vit", "image_size": 32, "patch_size": 8,
        ...                              "hidden_size": 16, "num_hidden_layers": 1,
        ...                              "num_attention_heads": 2, "intermediate_size": 32}, in_channels=1)
        >>> enc(torch.rand(2, 1, 40, 40)).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        config: Any = None,
        in_channels: int = 3,
        pooling: str = "auto",
        image_size: int | Sequence[int] | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        local_files_only: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        owner = type(self).__name__
        if (model_name_or_path is None) == (config is None):
            raise MultiFairError(
                f"{owner}: expected exactly one of `model_name_or_path` (a local folder holding config.json, "
                "the weights and preprocessor_config.json, as written by save_pretrained) and `config`, got "
                f"model_name_or_path={model_name_or_path!r}, config={'given' if config is not None else None}"
            )
        _checks.choice(owner, "pooling", pooling, POOLINGS)
        self.in_channels = _checks.positive_int(owner, "in_channels", in_channels)
        hub: dict[str, Any] = {"cache_dir": os.fspath(cache_dir) if cache_dir is not None else None}
        if local_files_only is not None:
            hub["local_files_only"] = bool(local_files_only)

        settings: dict[str, Any] | None = None
        if config is not None:
            config = _vision_config(owner, _build_config(owner, config))
            self.model = AutoModel.from_config(config)
        else:
            full = _from_pretrained(owner, AutoConfig, "model config", model_name_or_path, **hub)
            vision = _vision_config(owner, full)
            extra = {"config": vision} if vision is not full else {}
            self.model = _from_pretrained(owner, AutoModel, "model", model_name_or_path, **hub, **extra)
            settings = processor_settings(model_name_or_path, **hub)
        model_config = self.model.config
        self.model_type: str = str(getattr(model_config, "model_type", ""))
        self.pooling = AUTO_POOLING.get(self.model_type, "pooler") if pooling == "auto" else pooling

        num_channels = int(getattr(model_config, "num_channels", 3))
        self.preprocess = _preprocessing(
            owner,
            in_channels=self.in_channels,
            num_channels=num_channels,
            settings=settings,
            from_folder=model_name_or_path is not None,
            folder=model_name_or_path,
            config_size=_config_size(model_config),
            image_size=image_size,
            image_mean=image_mean,
            image_std=image_std,
        )
        probe_size = self.preprocess.output_size(*(_config_size(model_config) or (224, 224)))
        probe = torch.zeros(1, num_channels, *probe_size)

        def pooled_sum(module: nn.Module) -> torch.Tensor:
            return module._pool(module.model(pixel_values=probe)).sum()

        unused = find_unused_parameters(self, pooled_sum)
        for name, parameter in self.named_parameters():
            if name in unused:
                parameter.requires_grad_(False)
        #: parameters frozen because the pooled features do not depend on them
        self.unused_parameters: tuple[str, ...] = tuple(unused)
        with torch.no_grad():
            self.out_features: int = int(self._pool(self.model(pixel_values=probe)).shape[-1])

    def _pool(self, outputs: Any) -> torch.Tensor:
        owner = type(self).__name__
        if self.pooling == "pooler":
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                raise MultiFairError(
                    f"{owner}: the {self.model_type!r} model gives no `pooler_output`; use pooling='cls' or 'mean'"
                )
            return pooled.flatten(1)
        states = outputs.last_hidden_state
        if self.pooling == "mean":
            return states.mean(dim=1) if states.ndim == 3 else states.flatten(2).mean(dim=2)
        if states.ndim != 3:
            raise MultiFairError(
                f"{owner}: expected token outputs [B, L, H] for pooling='cls', but the {self.model_type!r} model "
                f"gives a feature map of shape {tuple(states.shape)}; use pooling='pooler' or 'mean'"
            )
        return states[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``[B, in_channels, H, W]`` (values in [0, 1]) into ``[B, out_features]``."""
        _checks.check_input(type(self).__name__, x, "[B, C, H, W]", self.in_channels)
        return self._pool(self.model(pixel_values=self.preprocess(x)))


def _build_config(owner: str, config: Any) -> Any:
    """A ``PretrainedConfig`` from one or a dict with ``model_type``."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config, Mapping):
        options = dict(config)
        model_type = options.pop("model_type", None)
        if not isinstance(model_type, str):
            raise MultiFairError(
                f"{owner}: expected `config` as a dict to have a string `model_type` (e.g. 'vit'), got {model_type!r}"
            )
        try:
            return AutoConfig.for_model(model_type, **options)
        except (ValueError, TypeError) as exc:
            raise MultiFairError(f"{owner}: invalid `config` for model_type {model_type!r}: {exc}") from exc
    if not isinstance(config, PretrainedConfig):
        raise MultiFairError(
            f"{owner}: expected `config` to be a transformers PretrainedConfig or a dict with `model_type`, "
            f"got {type(config).__name__}"
        )
    return config


def _vision_config(owner: str, config: Any) -> Any:
    """The vision tower's config of an image-text model (``vision_config``), else ``config`` itself."""
    from transformers import PretrainedConfig

    vision = getattr(config, "vision_config", None)
    if vision is None:
        return config
    if not isinstance(vision, PretrainedConfig):
        raise MultiFairError(
            f"{owner}: the {config.model_type!r} config's `vision_config` is a {type(vision).__name__}, "
            "expected a PretrainedConfig"
        )
    return vision


def _preprocessing(
    owner: str,
    *,
    in_channels: int,
    num_channels: int,
    settings: Mapping[str, Any] | None,
    from_folder: bool,
    folder: Any,
    config_size: tuple[int, int] | None,
    image_size: Any,
    image_mean: Any,
    image_std: Any,
) -> ImageProcessorTransform:
    """The :class:`ImageProcessorTransform` from the processor settings and the overrides."""
    if (image_mean is None) != (image_std is None):
        raise MultiFairError(
            f"{owner}: expected `image_mean` and `image_std` to be given together, got "
            f"image_mean={image_mean!r}, image_std={image_std!r}"
        )
    size_override = None if image_size is None else _checks.spatial_size(owner, "image_size", image_size, 2)
    if settings is None:
        if from_folder and image_mean is None:
            raise MultiFairError(
                f"{owner}: the model {os.fspath(folder)!r} has no image processor (preprocessor_config.json), so "
                "its normalisation is unknown; save the processor with the model, or give `image_mean` and "
                "`image_std` (e.g. [0.5, 0.5, 0.5] and [0.5, 0.5, 0.5]; [0, 0, 0] and [1, 1, 1] for none)"
            )
        return ImageProcessorTransform(
            in_channels,
            num_channels,
            image_mean,
            image_std,
            size=size_override or config_size,
        )
    mean = image_mean if image_mean is not None else settings.get("image_mean")
    std = image_std if image_std is not None else settings.get("image_std")
    if image_mean is None and not settings.get("do_normalize", True):
        mean = std = None
    elif mean is None or std is None:
        raise MultiFairError(
            f"{owner}: the image processor of {os.fspath(folder)!r} normalises but names no image_mean/image_std; "
            "give `image_mean` and `image_std`"
        )
    rescale = float(settings.get("rescale_factor", 1 / 255)) if settings.get("do_rescale", True) else 1.0
    interpolation = _RESAMPLE.get(int(settings.get("resample", 2) or 2), "bilinear")
    if size_override is not None:
        return ImageProcessorTransform(
            in_channels,
            num_channels,
            mean,
            std,
            255.0 * rescale,
            size=size_override,
            interpolation=interpolation,
        )
    size: Any = None
    crop = None
    crop_pct = None
    if settings.get("do_resize", True):
        raw = settings.get("size")
        height, width, edge = (_size_entry(raw, k) for k in ("height", "width", "shortest_edge"))
        if height is not None and width is not None:
            size = (int(height), int(width))
        elif edge is not None:
            size = {"shortest_edge": int(edge)}
            pct = settings.get("crop_pct")
            if pct is not None:
                crop_pct = float(pct)
                if int(edge) < 384:
                    crop = (int(edge), int(edge))
        else:
            raise MultiFairError(
                f"{owner}: the image processor of {os.fspath(folder)!r} resizes with size={raw!r}, which this "
                "encoder does not reproduce; give `image_size` ([H, W]) explicitly"
            )
    if settings.get("do_center_crop", False) and crop is None:
        raw = settings.get("crop_size")
        height, width = _size_entry(raw, "height"), _size_entry(raw, "width")
        if height is None or width is None:
            raise MultiFairError(
                f"{owner}: the image processor of {os.fspath(folder)!r} crops with crop_size={raw!r}; give "
                "`image_size` ([H, W]) explicitly"
            )
        crop = (int(height), int(width))
    if not math.isfinite(rescale) or rescale <= 0:
        raise MultiFairError(f"{owner}: the image processor's rescale_factor must be > 0, got {rescale!r}")
    return ImageProcessorTransform(
        in_channels,
        num_channels,
        mean,
        std,
        255.0 * rescale,
        size=size,
        crop_size=crop,
        crop_pct=crop_pct,
        interpolation=interpolation,
    )
