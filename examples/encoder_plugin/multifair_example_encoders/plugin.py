"""The plugin module named by the entry point: monai_multifair calls ``multifair_encoders()``."""

from monai_multifair.plugins import EncoderSpec, hookimpl
from multifair_example_encoders.encoders import CharCNNTextEncoder, GeMCNNEncoder


@hookimpl
def multifair_encoders() -> list[EncoderSpec]:
    """The encoders of this plugin; ``create_encoder(name, **options)`` calls ``factory(**options)``."""
    return [
        EncoderSpec(
            name="example-gem-cnn-2d",
            modality="image2d",
            factory=GeMCNNEncoder,
            description="example plugin: small CNN with generalized-mean (GeM) pooling",
        ),
        EncoderSpec(
            name="example-char-cnn-text",
            modality="text",
            factory=CharCNNTextEncoder,
            description="example plugin: character-level CNN over note text, max-pooled",
        ),
    ]
