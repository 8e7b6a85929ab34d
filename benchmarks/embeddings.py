"""The benchmark suites' embedding cache: built once, by its own command.

    python -m benchmarks cache [--full]

CIFAR images are decoded from the shared JPEG zips to lossless PNGs (the pixels ``clean``
would read from an image folder) and embedded with the default backbone (ImageNet
EfficientNet-Lite0, 224 px: the ``clean`` default) by ``cleanlab_ng.backbones.embed_images``.
Everything lands in ``benchmarks/.cache/`` (git-ignored); ``SHARED`` is never written.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(os.environ.get("CLEANLAB_NG_DATASETS",
                           Path(__file__).resolve().parents[2] / "shared" / "datasets"))
CACHE = Path(__file__).parent / ".cache"
IMAGE_SIZE = 224
QUICK_CIFAR10N = 10_000
FULL_CIFAR10N = 50_000

# name -> (folder under SHARED, zip of JPEGs)
IMAGE_SETS = {
    "cifar10n": ("cifar10n", "train_images_jpeg.zip"),
    "cifar10_test": ("cifar10_test_human", "test_images_jpeg.zip"),
}


def _decode(name: str, n: int) -> np.ndarray:
    folder, archive = IMAGE_SETS[name]
    sys.path.insert(0, str(SHARED / folder))
    try:
        from load import load_images  # the dataset's own loader
    finally:
        sys.path.pop(0)
    sys.modules.pop("load", None)  # both folders ship a module called load
    return load_images(SHARED / folder / archive, range(n))


def image_paths(name: str, n: int) -> list[Path]:
    """Images 0..n-1 of a shared CIFAR zip as PNG files (decoded once, cached)."""
    folder = CACHE / f"{name}_png"
    paths = [folder / f"{i:05d}.png" for i in range(n)]
    if not all(p.exists() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in zip(range(n), _decode(name, n)):
            if not paths[i].exists():
                Image.fromarray(image).save(paths[i])
    return paths


def image_embedding_path(name: str, n: int) -> Path:
    return CACHE / f"{name}_lite0_{IMAGE_SIZE}px_0-{n - 1}.npy"


def image_embeddings(name: str, n: int, *, build: bool = False) -> np.ndarray:
    """Cached EfficientNet-Lite0 features of images 0..n-1; a prefix of a larger cache
    serves too. Raises FileNotFoundError unless ``build``."""
    for size in sorted({n, QUICK_CIFAR10N, FULL_CIFAR10N}):
        path = image_embedding_path(name, size)
        if size >= n and path.exists():
            return np.load(path, mmap_mode="r")[:n].copy()
    if not build:
        raise FileNotFoundError(
            f"no cached embedding for {name} 0-{n - 1}: run `python -m benchmarks cache"
            f"{' --full' if n > QUICK_CIFAR10N else ''}` first")
    from cleanlab_ng.backbones import embed_images, resolve_backbone

    Z, readable = embed_images(image_paths(name, n), resolve_backbone()[0],
                               image_size=IMAGE_SIZE)
    if not readable.all():
        raise RuntimeError(f"{name}: {int((~readable).sum())} images could not be decoded")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(image_embedding_path(name, n), Z)
    return Z


def build(full: bool) -> dict[str, float]:
    """Build every cached embedding the suites need; seconds per item."""
    seconds = {}
    items = [("cifar10n", FULL_CIFAR10N if full else QUICK_CIFAR10N), ("cifar10_test", 10_000)]
    for name, n in items:
        t0 = time.perf_counter()
        image_embeddings(name, n, build=True)
        seconds[f"{name} 0-{n - 1}"] = round(time.perf_counter() - t0, 1)
        print(f"{name} 0-{n - 1}: {seconds[f'{name} 0-{n - 1}']} s", flush=True)
    return seconds
