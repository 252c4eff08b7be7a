"""lbw_utils.models: the CNN's frozen patch-whitening stem (PatchWhitening) and how fit sets it, its last
block's SmallMapConv, and its channels-last flatten."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lbw_utils.runs.experiments import BASELINE, ModelOptions, run_fingerprint
from lbw_utils.models import make_model
from lbw_utils.models.cnn import STEMS, WHITENING_IMAGES, PatchWhitening
from lbw_utils.speed import SmallMapConv
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
    with pytest.raises(ValueError, match=re.escape(f"stem='pca' is not known; choose one of {STEMS}")):
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


def conv_pair(in_channels: int, out_channels: int) -> tuple[SmallMapConv, nn.Conv2d]:
    torch.manual_seed(0)
    small = SmallMapConv(in_channels, out_channels)
    plain = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    with torch.no_grad():
        plain.weight.copy_(small.weight)
    return small, plain


def outputs_and_gradients(conv: nn.Module, images: torch.Tensor, upstream: torch.Tensor, images_need_grad=True):
    images = images.detach().clone().requires_grad_(images_need_grad)
    conv.zero_grad(set_to_none=True)
    output = conv(images)
    (output.float() * upstream).sum().backward()
    return output, images.grad, conv.weight.grad


@pytest.mark.parametrize("shape", [(5, 4, 3, 3), (3, 2, 4, 5), (2, 3, 1, 1), (6, 8, 7, 7)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_small_map_conv_gives_a_plain_convolutions_output_and_gradients(shape, layout):
    small, plain = conv_pair(shape[1], 6)
    images = torch.randn(shape).contiguous(memory_format=layout)
    upstream = torch.randn(shape[0], 6, *shape[2:])
    for got, want in zip(outputs_and_gradients(small, images, upstream), outputs_and_gradients(plain, images, upstream)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Only the weight's gradient (the convolution right after a frozen input)
    _, no_grad, weight_grad = outputs_and_gradients(small, images, upstream, images_need_grad=False)
    assert no_grad is None
    torch.testing.assert_close(weight_grad, outputs_and_gradients(plain, images, upstream)[2], rtol=1e-5, atol=1e-5)


def test_small_map_conv_under_bf16_autocast_matches_a_plain_convolution_to_bf16_precision():
    small, plain = conv_pair(16, 32)
    images = torch.randn(32, 16, 3, 3).contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(32, 32, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = outputs_and_gradients(small, images, upstream)
        want = outputs_and_gradients(plain, images, upstream)
    assert got[0].dtype == want[0].dtype == torch.bfloat16
    assert got[2].dtype == torch.float32  # the parameter's gradient, through autocast's cast
    for got_value, want_value in zip(got, want):
        scale = want_value.float().abs().max()
        torch.testing.assert_close(got_value.float() / scale, want_value.float() / scale, rtol=0, atol=2e-2)


def test_the_last_block_uses_small_map_convolutions_and_the_others_do_not():
    model = make_model("cnn", num_classes=10, input_shape=(3, 32, 32), size="large")  # 2 convolutions per block
    convs = [layer for layer in model.features if isinstance(layer, nn.Conv2d)]
    assert [type(conv) is SmallMapConv for conv in convs] == [False] * 6 + [True] * 2


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_cnn_is_its_head_on_the_maps_flattened_in_channel_order(layout):
    torch.manual_seed(0)
    model = make_model("cnn", num_classes=4, input_shape=(1, 28, 28), size="tiny").eval()
    images = torch.randn(3, 1, 28, 28)
    expected = model.head(model.features(images).flatten(1))  # nn.Flatten's order, which the head's weight keeps
    model.to(memory_format=layout)
    torch.testing.assert_close(model(images.contiguous(memory_format=layout)), expected, rtol=1e-5, atol=1e-5)
