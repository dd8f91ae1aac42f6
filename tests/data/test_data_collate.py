"""MultimodalCollate: stacking, tokenization through the encoders' ``tokenize``, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from monai_multifair.data import MultimodalCollate, make_cohort
from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import create_encoder


def test_batches_from_a_dataloader_with_a_registry_text_encoder():
    ds = make_cohort(n_patients=60, seed=3).dataset("train", modalities=None, attributes=["race", "gender"])
    encoder = create_encoder("bow-text", vocab_size=512, embedding_dim=8, max_length=40)
    loader = DataLoader(ds, batch_size=7, collate_fn=MultimodalCollate({"notes": encoder}, keep_text=True))
    batch = next(iter(loader))
    samples = [ds[i] for i in range(7)]
    assert batch["fundus"].shape == (7, 1, 32, 32) and batch["fundus"].dtype == torch.float32
    assert torch.equal(batch["fundus"], torch.stack([s["fundus"] for s in samples]))
    assert torch.equal(batch["vitals"], torch.stack([s["vitals"] for s in samples]))
    assert torch.equal(batch["notes"], encoder.tokenize([s["notes"] for s in samples]))
    assert batch["notes_text"] == [s["notes"] for s in samples]
    for key in ("label", "race", "gender", "group"):
        assert batch[key].dtype == torch.int64 and batch[key].tolist() == [s[key] for s in samples]
    assert batch["id"] == [s["id"] for s in samples]
    assert encoder(batch["notes"]).shape == (7, encoder.out_features)


def test_plain_callable_and_untokenized_text():
    calls = []

    def tok(texts):
        calls.append(list(texts))
        return torch.tensor([[len(t), 0] for t in texts])

    batch = MultimodalCollate({"a": tok})([{"a": "xy", "b": "z", "f": 0.5}, {"a": "abc", "b": "w", "f": 2}])
    assert batch["a"].tolist() == [[2, 0], [3, 0]] and calls == [["xy", "abc"]]
    assert batch["b"] == ["z", "w"] and batch["f"].dtype == torch.float32


def test_errors_name_the_key():
    collate = MultimodalCollate()
    with pytest.raises(
        MultiFairError, match=r"cannot stack key 'fundus'.*\(1, 4, 4\).*\(1, 5, 5\).*image_size"
    ):
        collate([{"fundus": torch.zeros(1, 4, 4)}, {"fundus": torch.zeros(1, 5, 5)}])
    with pytest.raises(MultiFairError, match="sample 1 has keys"):
        collate([{"a": 1}, {"b": 1}])
    with pytest.raises(MultiFairError, match="empty list"):
        collate([])
    bad = MultimodalCollate({"t": lambda texts: torch.zeros(len(texts))})
    with pytest.raises(
        MultiFairError, match=r"tokenizer for 't' must return a LongTensor \[B=2, L\], got \(2,\)"
    ):
        bad([{"t": "a"}, {"t": "b"}])
    floats = MultimodalCollate({"t": lambda texts: torch.zeros(len(texts), 3)})
    with pytest.raises(MultiFairError, match="integer token ids"):
        floats([{"t": "a"}])
    with pytest.raises(MultiFairError, match="must have a `tokenize"):
        MultimodalCollate({"t": 3})
    with pytest.raises(MultiFairError, match="cannot collate key 'x'"):
        collate([{"x": 1}, {"x": "a"}])
