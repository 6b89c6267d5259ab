"""Depth Anything (DINOv2 ViT + DPT) loaded from both release layouts predicts what their own
code predicts: transformers' DepthAnythingForDepthEstimation saved as a Hugging Face folder,
and the original code's state dict (tests/reference/depth_anything_torch.py, written from its
structure and key names) as .pth and as .safetensors. Random weights at a healthy scale, no
download; float32, two input sizes off the checkpoint's 37x37 grid, batch 1 and 3, within
1e-4 of the output range."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from depthsense_jax import params_io
from depthsense_jax.models import depth_anything_io, registry
from depthsense_jax.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from reference import depth_anything_torch as ref  # noqa: E402

# A small ViT on the releases' 37x37 position grid: width 32, 6 blocks, 2 heads.
SMALL = dict(embed_dim=32, depth=6, num_heads=2, features=16, out_channels=[8, 16, 24, 32])
SIZES = ((252, 322), (406, 546))  # 18x23 and 29x39 patches: below and above 37x37
V2_LAYERS = [1, 2, 3, 5]  # what the readers take for V2 at depth 6
TOLERANCE = 1e-4  # of the output range


def _normalised(images: np.ndarray) -> torch.Tensor:
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    return torch.from_numpy(((images - mean) / std).transpose(0, 3, 1, 2).copy())


def _images(batch: int, size, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, *size, 3), dtype=np.float32)


def _close(ours: np.ndarray, theirs: np.ndarray) -> None:
    span = float(theirs.max() - theirs.min())
    assert span > 0.1 and 0.2 < float((theirs > 0).mean()) < 0.95  # a healthy, varied map
    err = float(np.abs(ours - theirs).max())
    assert err <= TOLERANCE * span, f"max |ours - theirs| = {err:.3g}, range {span:.3g}"


def _predict(loaded, images: np.ndarray) -> np.ndarray:
    module = registry.build(loaded.model_config)
    return np.asarray(jax.jit(lambda v, x: registry.infer(module, v, x))(loaded.variables,
                                                                         images))


@torch.no_grad()
def _healthy_hf_init_(model, seed: int = 0):
    """transformers' model at the scale of `ref.healthy_init_` (its own init gives a
    near-constant map): weights N(0, 1/fan_in), biases N(0, 0.1), norms 1 + N(0, 0.1),
    LayerScale N(0.5, 0.1), tokens N(0, 0.5); the last bias set so ~60% of pixels are > 0."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g)
        if name.endswith(("cls_token", "mask_token", "position_embeddings")):
            p.copy_(0.5 * noise)
        elif "lambda1" in name:
            p.copy_(0.5 + 0.1 * noise)
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * noise)
        elif name.endswith("bias"):
            p.copy_(0.1 * noise)
        else:
            fan_in = p[0].numel() if "resize" not in name or p.shape[-1] == 3 else (
                p.shape[0])  # a transposed convolution's input per output pixel
            p.copy_(noise * fan_in ** -0.5)
    pre = []
    hook = model.head.conv3.register_forward_hook(lambda _m, _i, out: pre.append(out.clone()))
    model(pixel_values=torch.randn(1, 3, 14 * 8, 14 * 10, generator=g))
    hook.remove()
    model.head.conv3.bias -= torch.quantile(pre[0].flatten(), 0.4)
    return model


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from depthsense_jax.models.torch_depth_anything import hf_config

    config = depth_anything_io.model_config_for(
        **SMALL, layers=V2_LAYERS, pos_grid=37,
        pos_interpolation="transformers")
    model = _healthy_hf_init_(transformers.DepthAnythingForDepthEstimation(hf_config(config)))
    folder = tmp_path_factory.mktemp("hf") / "depth-anything-small-hf"
    model.eval().save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    from safetensors.torch import save_file

    model = ref.healthy_init_(ref.DepthAnythingRef(
        **SMALL, layers=V2_LAYERS, pos_grid=37), seed=1).eval()
    folder = tmp_path_factory.mktemp("original")
    state = model.state_dict()
    torch.save(state, folder / "depth_anything_v2_small.pth")
    save_file({k: v.contiguous() for k, v in state.items()},
              folder / "depth_anything_v2_small.safetensors")
    return folder, model


@pytest.mark.parametrize("size", SIZES)
def test_a_hugging_face_folder_predicts_as_transformers(hf_folder, size):
    folder, model = hf_folder
    loaded = params_io.load(str(folder))
    assert loaded.source == "Hugging Face Depth Anything folder"
    assert loaded.model_config.pos_interpolation == "transformers"
    assert list(loaded.model_config.layers) == V2_LAYERS
    for batch in (1, 3):
        images = _images(batch, size, seed=batch)
        with torch.no_grad():
            theirs = model(pixel_values=_normalised(images)).predicted_depth.numpy()
        _close(_predict(loaded, images), theirs)


def test_an_original_state_dict_predicts_as_the_original_code(original):
    folder, model = original
    loaded = params_io.load(str(folder / "depth_anything_v2_small.safetensors"))
    assert loaded.model_config.pos_interpolation == "dinov2"
    # The .pth (read with torch) holds the same tensors: the same variables, bit for bit.
    from_pth = params_io.load(str(folder / "depth_anything_v2_small.pth"))
    assert from_pth.model_config.to_dict() == loaded.model_config.to_dict()
    jax.tree.map(np.testing.assert_array_equal, from_pth.variables, loaded.variables)
    for size, batch in ((SIZES[0], 1), (SIZES[1], 3), (SIZES[0], 3), (SIZES[1], 1)):
        images = _images(batch, size, seed=batch + size[0])
        with torch.no_grad():
            theirs = model(_normalised(images)).numpy()
        _close(_predict(loaded, images), theirs)


def test_at_the_checkpoints_own_grid_the_embeddings_are_used_as_they_are(original):
    folder, model = original
    loaded = params_io.load(str(folder / "depth_anything_v2_small.safetensors"))
    images = _images(1, (518, 518), seed=5)
    with torch.no_grad():
        theirs = model(_normalised(images)).numpy()
    _close(_predict(loaded, images), theirs)


def test_v1_is_told_from_v2_by_the_file_name(original, tmp_path):
    from safetensors.torch import save_file

    folder, model = original
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "depth_anything_vits14.safetensors")
    v1 = params_io.load(str(tmp_path / "depth_anything_vits14.safetensors"))
    assert list(v1.model_config.layers) == [2, 3, 4, 5]  # the last four blocks
    v1_ref = ref.DepthAnythingRef(**SMALL, layers=[2, 3, 4, 5], pos_grid=37).eval()
    v1_ref.load_state_dict(model.state_dict())
    images = _images(1, SIZES[0], seed=9)
    with torch.no_grad():
        theirs = v1_ref(_normalised(images)).numpy()
    _close(_predict(v1, images), theirs)


def test_a_missing_or_unexpected_tensor_is_named(original, tmp_path):
    from safetensors.torch import save_file

    folder, model = original
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    broken = dict(state)
    del broken["depth_head.scratch.layer2_rn.weight"]
    broken["depth_head.extra.weight"] = torch.zeros(3)
    save_file(broken, tmp_path / "depth_anything_v2_broken.safetensors")
    with pytest.raises(ValueError, match=r"missing 1 tensor\(s\): depth_head.scratch.layer2_rn"
                                         r".weight.*unexpected tensor\(s\): depth_head.extra"):
        params_io.load(str(tmp_path / "depth_anything_v2_broken.safetensors"))


def test_init_from_a_checkpoint_of_another_size_says_which_it_found(original):
    folder, _ = original
    from depthsense_jax.models.depth_anything import variant_config

    with pytest.raises(ValueError, match=r"is a DepthAnything\(V2, ViT \(width 32, 6 blocks\)"
                       r".*config.model is a DepthAnything\(V2, ViT-S.*set "
                       r"--config.model.embed_dim=32 --config.model.depth=6 "
                       r"--config.model.num_heads=2 --config.model.layers=\(1,2,3,5\)"):
        params_io.load_variables(str(folder / "depth_anything_v2_small.safetensors"),
                                 variant_config("vits"))


def test_the_encoder_alone_loads_as_model_pretrained(original, hf_folder, tmp_path):
    from safetensors.torch import save_file

    folder, model = original
    config = depth_anything_io.model_config_for(**SMALL, layers=[0, 2, 3, 5], pos_grid=37,
                                                pos_interpolation="dinov2")
    # DINOv2's own layout: the encoder's tensors without the "pretrained." prefix.
    encoder_only = {k.removeprefix("pretrained."): v.contiguous()
                    for k, v in model.state_dict().items() if k.startswith("pretrained.")}
    save_file(encoder_only, tmp_path / "dinov2_small.safetensors")
    whole = params_io.load(str(folder / "depth_anything_v2_small.safetensors")).variables
    for source in (tmp_path / "dinov2_small.safetensors",
                   folder / "depth_anything_v2_small.pth", hf_folder[0]):
        encoder = params_io.encoder_weights(str(source), config)["params"]
        assert set(encoder) == set(whole["params"]["encoder"])
        if source != hf_folder[0]:
            jax.tree.map(np.testing.assert_array_equal, encoder, whole["params"]["encoder"])
    wrong = depth_anything_io.model_config_for(**{**SMALL, "depth": 4}, layers=[0, 1, 2, 3],
                                               pos_grid=37, pos_interpolation="dinov2")
    with pytest.raises(ValueError, match="6 blocks.*config.model is width 32, 4 blocks"):
        params_io.encoder_weights(str(tmp_path / "dinov2_small.safetensors"), wrong)


def test_hf_config_is_read_for_the_variant(hf_folder):
    folder, _ = hf_folder
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "depth_anything"
    loaded = params_io.load(str(folder))
    assert (loaded.model_config.embed_dim, loaded.model_config.depth,
            loaded.model_config.features, list(loaded.model_config.out_channels)) == (
        32, 6, 16, [8, 16, 24, 32])


def test_our_variables_go_back_into_transformers_model(hf_folder):
    """The speed benchmark's PyTorch peer runs our weights: the inverse of the reader."""
    from depthsense_jax.models.torch_depth_anything import TransformersPeer

    folder, model = hf_folder
    loaded = params_io.load(str(folder))
    peer = TransformersPeer(loaded.model_config).eval()
    peer.load_variables(loaded.variables)
    images = _images(2, SIZES[0], seed=11)
    with torch.no_grad():
        theirs = model(pixel_values=_normalised(images)).predicted_depth.numpy()
        again = peer(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(again, theirs, atol=1e-5 * float(theirs.max() - theirs.min()))
