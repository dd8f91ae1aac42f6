"""Built-in encoders: each maps one modality to features ``[B, out_features]``.

They are registered in the encoder registry under names such as ``"resnet18-2d"`` by the built-in
plugin (:mod:`monai_multifair.plugins.builtin`); build them with
``monai_multifair.plugins.create_encoder(name, **options)`` or directly from these classes. MONAI and
``transformers`` are imported only when an encoder that needs them is built.
"""

from monai_multifair.networks.encoders.bow_text import BagOfWordsEncoder
from monai_multifair.networks.encoders.densenet import DenseNetEncoder
from monai_multifair.networks.encoders.hf_text import HFTextEncoder, minilm_text_encoder
from monai_multifair.networks.encoders.resnet import ResNetEncoder
from monai_multifair.networks.encoders.slicewise import SliceAttentionPooling, SliceWiseEncoder
from monai_multifair.networks.encoders.small_cnn import SmallCNNEncoder
from monai_multifair.networks.encoders.tabular_mlp import TabularMLPEncoder
from monai_multifair.networks.encoders.tokenizers import HashingTokenizer
from monai_multifair.networks.encoders.vit import ViTEncoder

__all__ = [
    "BagOfWordsEncoder",
    "DenseNetEncoder",
    "HFTextEncoder",
    "HashingTokenizer",
    "ResNetEncoder",
    "SliceAttentionPooling",
    "SliceWiseEncoder",
    "SmallCNNEncoder",
    "TabularMLPEncoder",
    "ViTEncoder",
    "minilm_text_encoder",
]
