"""``hf-image``, ``hf-clip-vision`` and ``hf-clip-text`` against the ``transformers`` models called directly.

Every model is a tiny random one written with ``save_pretrained`` into ``tmp_path`` and loaded by path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _hf_checkpoints import clip_tokenizer, vision_config, write_clip, write_vision_model

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import HFImageEncoder, ImageProcessorTransform, SliceWiseEncoder
from monai_multifair.plugins import create_encoder

BACKBONES = ("vit", "deit", "swin", "convnext", "dinov2", "clip")
# what ``pooling="auto"`` reads, per model type
AUTO = {
    "vit": "cls",
    "deit": "cls",
    "swin": "pooler",
    "convnext": "pooler",
    "dinov2": "pooler",
    "clip": "pooler",
}


def _images(n: int = 2, size: int = 32, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _as_input(images: np.ndarray) -> torch.Tensor:
    """What the loaders give for uint8 files: ``[B, C, H, W]`` in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


@pytest.mark.parametrize("model_type", BACKBONES)
def test_hf_image_equals_the_model_on_its_processor_output(tmp_path, model_type):
    from transformers import AutoImageProcessor

    model = write_vision_model(tmp_path, model_type)
    encoder = create_encoder("hf-image", model_name_or_path=tmp_path).eval()
    images = _images()
    pixel_values = AutoImageProcessor.from_pretrained(tmp_path)(images=list(images), return_tensors="pt")
    with torch.no_grad():
        outputs = (model.vision_model if model_type == "clip" else model)(**pixel_values)
        expected = outputs.last_hidden_state[:, 0] if AUTO[model_type] == "cls" else outputs.pooler_output
        features = encoder(_as_input(images))
    assert encoder.pooling == AUTO[model_type]
    assert features.shape == (2, encoder.out_features) and encoder.out_features == expected.shape[1]
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_type", BACKBONES)
def test_hf_image_every_trainable_parameter_gets_a_gradient(model_type):
    torch.manual_seed(0)
    encoder = HFImageEncoder(config=vision_config(model_type), in_channels=1)
    encoder(torch.rand(3, 1, 40, 36)).square().sum().backward()
    unused = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []  # DDP needs no find_unused_parameters
    frozen = {n for n, p in encoder.named_parameters() if not p.requires_grad}
    assert frozen == set(encoder.unused_parameters)
    if model_type == "dinov2":
        assert frozen == {"model.embeddings.mask_token"}
    if model_type == "vit":
        assert frozen == {"model.pooler.dense.weight", "model.pooler.dense.bias"}  # CLS pooling skips it


def test_hf_image_built_without_gradients_finds_the_same_unused_parameters():
    with torch.no_grad():
        encoder = HFImageEncoder(config=vision_config("dinov2"))
    assert encoder.unused_parameters == ("model.embeddings.mask_token",)
    with torch.inference_mode():
        blind = HFImageEncoder(config=vision_config("dinov2"))
    assert blind.unused_parameters == () and all(p.requires_grad for p in blind.parameters())


def test_hf_image_poolings_and_grey_inputs(tmp_path):
    model = write_vision_model(tmp_path, "vit")
    images = _images(channels=1)
    grey = create_encoder("hf-image", model_name_or_path=tmp_path, in_channels=1, pooling="mean").eval()
    rgb = create_encoder("hf-image", model_name_or_path=tmp_path, pooling="mean").eval()
    with torch.no_grad():
        torch.testing.assert_close(grey(_as_input(images)), rgb(_as_input(np.repeat(images, 3, axis=-1))))
        pooler = create_encoder("hf-image", model_name_or_path=tmp_path, pooling="pooler").eval()
        x = _as_input(np.repeat(images, 3, axis=-1))
        states = model(pixel_values=pooler.preprocess(x))
        torch.testing.assert_close(pooler(x), states.pooler_output)
        torch.testing.assert_close(rgb(x), states.last_hidden_state.mean(dim=1))


def test_hf_image_resizes_and_crops_like_the_processor(tmp_path):
    from transformers import CLIPImageProcessor

    write_clip(tmp_path)
    encoder = create_encoder("hf-clip-vision", model_name_or_path=tmp_path).eval()
    images = np.random.default_rng(3).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)  # not square
    expected = CLIPImageProcessor.from_pretrained(tmp_path)(images=list(images), return_tensors="pt")
    got = encoder.preprocess(_as_input(images))
    assert got.shape == expected["pixel_values"].shape == (1, 3, 32, 32)
    # torch's antialiased bicubic resize against PIL's: close, not bit-identical (documented)
    assert float((got - expected["pixel_values"]).abs().mean()) < 0.02


def test_image_processor_transform_rules():
    shortest = ImageProcessorTransform(1, 3, [0.5] * 3, [0.25] * 3, 255 / 255, size={"shortest_edge": 8})
    assert shortest.output_size(16, 32) == (8, 16) and shortest.output_size(30, 10) == (24, 8)
    convnext = ImageProcessorTransform(
        3, 3, None, None, size={"shortest_edge": 224}, crop_pct=0.875, crop_size=(224, 224)
    )
    assert convnext.output_size(300, 400) == (224, 224) and convnext._resized_size(300, 400) == (256, 341)
    x = torch.rand(2, 1, 8, 16)
    torch.testing.assert_close(shortest(x), (x.expand(-1, 3, -1, -1) - 0.5) / 0.25)  # already at size
    with pytest.raises(MultiFairError, match=r"`in_channels` to be 1 \(grey, repeated\) or the model's 3"):
        ImageProcessorTransform(2, 3, None, None)
    with pytest.raises(MultiFairError, match=r"`image_std` to have one value per model channel \(3\)"):
        ImageProcessorTransform(3, 3, [0.5] * 3, [0.2, 0.2])
    with pytest.raises(MultiFairError, match=r"`image_std` values > 0"):
        ImageProcessorTransform(3, 3, [0.5] * 3, [0.2, 0.0, 0.2])


def test_hf_image_without_a_processor_needs_the_normalisation(tmp_path):
    model = write_vision_model(tmp_path, "vit", processor=False)
    with pytest.raises(
        MultiFairError, match=r"has no image processor \(preprocessor_config\.json\).*`image_mean`"
    ):
        create_encoder("hf-image", model_name_or_path=tmp_path)
    encoder = create_encoder(
        "hf-image", model_name_or_path=tmp_path, image_mean=[0.5] * 3, image_std=[0.5] * 3, image_size=32
    ).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), model(pixel_values=(x - 0.5) / 0.5).last_hidden_state[:, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of `model_name_or_path`"),
        ({"config": vision_config("vit"), "model_name_or_path": "x"}, "exactly one of"),
        ({"config": {"hidden_size": 8}}, r"string `model_type` \(e\.g\. 'vit'\), got None"),
        ({"config": vision_config("vit"), "pooling": "max"}, r"`pooling` to be one of 'auto'.*got 'max'"),
        ({"config": vision_config("vit"), "in_channels": 2}, r"`in_channels` to be 1 \(grey, repeated\)"),
        (
            {"config": vision_config("convnext"), "pooling": "cls"},
            r"pooling='cls'.*feature map.*'pooler' or 'mean'",
        ),
        (
            {"config": vision_config("vit"), "image_mean": [0.5] * 3},
            "`image_mean` and `image_std` to be given together",
        ),
    ],
)
def test_hf_image_bad_arguments(kwargs, match):
    with pytest.raises(MultiFairError, match=match):
        HFImageEncoder(**kwargs)


def test_hf_image_not_available_offline_names_local_folders(tmp_path):
    with pytest.raises(MultiFairError, match=r"could not load the model config 'some-lab/vit'.*local folder"):
        create_encoder(
            "hf-image", model_name_or_path="some-lab/vit", cache_dir=tmp_path, local_files_only=True
        )


def test_slicewise_oct_with_an_hf_image_slice_encoder(tmp_path):
    write_vision_model(tmp_path, "vit")
    torch.manual_seed(0)
    encoder = create_encoder(
        "slicewise-oct",
        slice_encoder="hf-image",
        slice_encoder_options={"model_name_or_path": str(tmp_path)},
        in_channels=1,
        attention_dim=4,
    ).eval()
    stacks = torch.rand(2, 5, 1, 40, 40)
    with torch.no_grad():
        features = encoder(stacks)
        per_slice = encoder.slice_encoder(stacks.flatten(0, 1)).reshape(2, 5, -1)
        assert features.shape == (2, 16) and encoder.slice_encoder.in_channels == 1
        torch.testing.assert_close(features, encoder.pool(per_slice))
        one = SliceWiseEncoder(encoder.slice_encoder, in_channels=1, attention_dim=4).eval()
        torch.testing.assert_close(one(stacks[:, :1]), encoder.slice_encoder(stacks[:, 0]))


def test_clip_towers_equal_the_clip_model(tmp_path):
    model, tokenizer = write_clip(tmp_path)
    vision = create_encoder("hf-clip-vision", model_name_or_path=tmp_path, in_channels=1).eval()
    text = create_encoder("hf-clip-text", model_name_or_path=tmp_path, max_length=20).eval()
    assert vision.out_features == text.out_features == 12
    assert not any(name.startswith("text") for name, _ in vision.model.named_parameters())
    images = _images(channels=1)
    notes = ["iop 24 high", "", "normal disc, cup ratio 0.4 and many more words than fit here"]
    with torch.no_grad():
        pixels = torch.from_numpy(np.repeat(images, 3, axis=-1)).permute(0, 3, 1, 2).float() / 255
        pixels = (pixels - vision.preprocess.mean) / vision.preprocess.std
        image_ref = model.get_image_features(pixel_values=pixels)
        encoded = tokenizer(notes, padding=True, truncation=True, max_length=20, return_tensors="pt")
        text_ref = model.get_text_features(**encoded)
        image_ref = getattr(image_ref, "pooler_output", image_ref)  # transformers 5 returns an output object
        text_ref = getattr(text_ref, "pooler_output", text_ref)
        torch.testing.assert_close(vision(_as_input(images)), image_ref)
        ids = text.tokenize(notes)
        assert ids.shape == (3, 20)
        torch.testing.assert_close(text(ids), text_ref)
        torch.testing.assert_close(
            text(text.tokenize(notes, padding="longest")), text_ref
        )  # padding is inert
        unprojected = create_encoder(
            "hf-clip-text", model_name_or_path=tmp_path, projection=False, normalize=True, max_length=20
        )
        pooled = model.text_model(**encoded).pooler_output
        torch.testing.assert_close(unprojected.eval()(ids), pooled / pooled.norm(dim=1, keepdim=True))
    assert unprojected.out_features == 16


def test_clip_errors(tmp_path):
    write_vision_model(tmp_path / "vit", "vit")
    with pytest.raises(
        MultiFairError, match=r"expected a CLIP checkpoint .* got model_type 'vit'.*'hf-image'"
    ):
        create_encoder("hf-clip-vision", model_name_or_path=tmp_path / "vit")
    config = vision_config("clip")
    with pytest.raises(MultiFairError, match=r"built from `config` needs `tokenizer`"):
        create_encoder("hf-clip-text", config=config)
    tokenizer = clip_tokenizer(tmp_path / "tok")
    with pytest.raises(
        MultiFairError, match=r"`max_length` <= 24 \(the model's max_position_embeddings\), got 77"
    ):
        create_encoder("hf-clip-text", config=config, tokenizer=tokenizer, max_length=77)
    encoder = create_encoder("hf-clip-text", config=config, tokenizer=tokenizer)
    assert encoder.max_length == 24 and encoder(encoder.tokenize(["cup"])).shape == (1, 12)
