"""Built-in encoders: each maps one modality to features ``[B, out_features]``.

They are registered in the encoder registry under names such as ``"resnet18-2d"`` by the built-in
plugin module (:mod:`monai_multifair.networks.encoders.plugin`); build them with
``monai_multifair.plugins.create_encoder(name, **options)`` or directly from these classes. MONAI and
``transformers`` are imported only when an encoder that needs them is built. :mod:`.weights` loads
local state dicts into any encoder and freezes parameters.
"""

from monai_multifair.networks.encoders.bow_text import BagOfWordsEncoder
from monai_multifair.networks.encoders.densenet import DenseNetEncoder
from monai_multifair.networks.encoders.hf_clip import HFCLIPTextEncoder, HFCLIPVisionEncoder
from monai_multifair.networks.encoders.hf_image import HFImageEncoder, ImageProcessorTransform
from monai_multifair.networks.encoders.hf_text import HFTextEncoder, minilm_text_encoder
from monai_multifair.networks.encoders.resnet import ResNetEncoder
from monai_multifair.networks.encoders.slicewise import SliceAttentionPooling, SliceWiseEncoder
from monai_multifair.networks.encoders.small_cnn import SmallCNNEncoder
from monai_multifair.networks.encoders.tabular_mlp import TabularMLPEncoder
from monai_multifair.networks.encoders.tokenizers import HashingTokenizer
from monai_multifair.networks.encoders.vit import ViTEncoder
from monai_multifair.networks.encoders.weights import (
    WeightsReport,
    freeze_parameters,
    load_encoder_weights,
    map_state_dict_keys,
    read_state_dict,
)

__all__ = [
    "BagOfWordsEncoder",
    "DenseNetEncoder",
    "HFCLIPTextEncoder",
    "HFCLIPVisionEncoder",
    "HFImageEncoder",
    "HFTextEncoder",
    "HashingTokenizer",
    "ImageProcessorTransform",
    "ResNetEncoder",
    "SliceAttentionPooling",
    "SliceWiseEncoder",
    "SmallCNNEncoder",
    "TabularMLPEncoder",
    "ViTEncoder",
    "WeightsReport",
    "freeze_parameters",
    "load_encoder_weights",
    "map_state_dict_keys",
    "minilm_text_encoder",
    "read_state_dict",
]
