"""lbw_utils.models: the CNN's frozen patch-whitening stem (PatchWhitening) and how fit sets it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.experiments import BASELINE, ModelOptions, run_fingerprint
from lbw_utils.models import STEMS, WHITENING_IMAGES, PatchWhitening, make_model
from lbw_utils.train import TrainConfig, fit


def correlated_images(count: int = 64, size: int = 12, seed: int = 0) -> torch.Tensor:
    """Grey images whose neighbouring pixels correlate, so that whitening has something to undo."""
    noise = torch.randn(count, 1, size + 1, size + 1, generator=torch.Generator().manual_seed(seed))
    return noise[:, :, 1:, 1:] + 0.6 * noise[:, :, :-1, 1:] + 0.3 * noise[:, :, 1:, :-1]


def patches_of(images: torch.Tensor) -> np.ndarray:
    return F.unfold(images, 3).transpose(1, 2).reshape(-1, 9).double().numpy()


def test_whitening_decorrelates_patches_to_unit_variance():
    images = correlated_images()
    stem = PatchWhitening(1, 18, eps=1e-12)  # all 9 components, each with both signs
    stem.fit(images)
    filters = stem.weight.reshape(18, 9).double().numpy()
    np.testing.assert_allclose(filters[9:], -filters[:9])
    patches = patches_of(images)
    responses = patches @ filters[:9].T
    np.testing.assert_allclose(responses.T @ responses / len(responses), np.eye(9), atol=1e-5)


def test_whitening_keeps_the_leading_components_when_it_has_fewer_filters():
    images = correlated_images(seed=1)
    stem = PatchWhitening(1, 4, eps=5e-4)
    stem.fit(images)
    patches = patches_of(images)
    eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
    expected = (eigenvectors[:, ::-1][:, :2] / np.sqrt(eigenvalues[::-1][:2] + 5e-4)).T
    got = stem.weight.reshape(4, 9).double().numpy()[:2]
    for row, want in zip(got, expected):  # an eigenvector's sign is arbitrary
        np.testing.assert_allclose(row * np.sign(row @ want), want, rtol=1e-4, atol=1e-6)


def test_whitening_is_the_same_in_chunks_or_at_once():
    images = correlated_images(count=30)
    whole, chunked = PatchWhitening(1, 16), PatchWhitening(1, 16)
    whole.fit(images, chunk=30)
    chunked.fit(images, chunk=7)
    torch.testing.assert_close(chunked.weight, whole.weight, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels, message", [(20, "at most 18; got out_channels=20"),
                                               (7, "even number of filters")])
def test_whitening_width_is_checked(channels, message):
    with pytest.raises(ValueError, match=message):
        PatchWhitening(1, channels)


def test_unknown_stem_names_the_choices():
    with pytest.raises(ValueError, match=f"stem='pca' is not known; choose one of {STEMS}".replace("(", r"\(")
                       .replace(")", r"\)")):
        make_model("cnn", num_classes=3, input_shape=(1, 8, 8), size="tiny", stem="pca")


@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_each_size_builds_on_grey_and_colour_images_with_the_stem_its_width_allows(input_shape):
    stems = {size: make_model("cnn", num_classes=10, input_shape=input_shape, size=size).features[0]
             for size in ("tiny", "small", "medium", "large")}
    assert isinstance(stems["tiny"], PatchWhitening) and isinstance(stems["small"], PatchWhitening)
    # 24 and 64 filters are more than the 2 x 9 that a grey 3x3 patch can whiten.
    assert type(stems["medium"]) is nn.Conv2d and type(stems["large"]) is nn.Conv2d


def test_fit_sets_the_stem_from_the_training_images_and_never_trains_it(tiny_data):
    data = tiny_data(image_noise=25.0, seed=0)
    torch.manual_seed(0)
    model = make_model("cnn", num_classes=data.num_classes, input_shape=data.input_shape, size="tiny")
    stem = model.features[0]
    assert not any(parameter is stem.weight for parameter in model.parameters())
    fit(model, data, config=TrainConfig(epochs=2, batch_size=16, lr=0.05), seed=0, progress=False)
    expected = PatchWhitening(1, stem.weight.shape[0])
    (images,), _ = next(iter(data.batches("train", WHITENING_IMAGES)))
    expected.fit(images)
    torch.testing.assert_close(stem.weight.contiguous(), expected.weight)
    assert "features.0.weight" in model.state_dict()  # saved with the weights, so a reloaded run predicts alike


def test_the_backward_pass_stops_at_the_first_batchnorm():
    torch.manual_seed(0)
    model = make_model("cnn", num_classes=3, input_shape=(1, 8, 8), size="tiny")
    images = torch.randn(4, 1, 8, 8)
    stem_output = model.features[0](images)
    assert not stem_output.requires_grad  # neither the stem nor the pool after it enters the backward pass
    model(images).sum().backward()
    assert all(parameter.grad is not None for parameter in model.parameters())


def test_the_run_fingerprint_names_the_stem(tiny_data):
    data = tiny_data(image_noise=25.0, seed=0)
    fingerprint = run_fingerprint(dict(BASELINE), data, TrainConfig(), ModelOptions(name="cnn", size="tiny"))
    assert fingerprint["model"]["stem"] == "whiten"
