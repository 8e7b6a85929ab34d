"""``--finetune``: the timm backbone trained end to end, for the ``dynamics`` stage.

The cheap proxy is a head on frozen features; this is the expensive one, meant for a GPU:
the pretrained backbone plus a linear classifier, trained on the images with the given
labels (SGD with momentum, random crop and flip, constant LR for the first 60 % of the
epochs then cosine decay), with one eval-mode pass over the deterministic view of every
image after each epoch -- the same record the head run writes, so every detector reads it
unchanged. The images are decoded once into memory at ``image_size`` (N x S x S x 3 bytes).
:func:`proxy_model`, :func:`train_epoch` and :func:`predict_proba` also train the fold
models of fastReCoV (:mod:`cleanlab_ng.train.fastrecov`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..backbones import Backbone, trainable_backbone
from .proxy import WARMUP_FRACTION, Progress, _lr_factor, _record_epoch, summarise_run
from .record import Dynamics


@dataclass(frozen=True)
class Schedule:
    """How every fine-tuned model trains: SGD with momentum 0.9 in minibatches.

    Defaults after the detectors' reference runs (SGD 0.01, momentum 0.9, wd 5e-4:
    detectors.md §3), with the batch of 64 that fits a 16 GB GPU at 224 px.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 0.01
    weight_decay: float = 5e-4

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9,
                               weight_decay=self.weight_decay)


def finetune_dynamics(
    images: np.ndarray,
    labels: np.ndarray,
    backbone: Backbone,
    *,
    n_classes: int,
    noise_rate: float,
    schedule: Schedule = Schedule(),
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Progress | None = None,
) -> Dynamics:
    """Fine-tune ``backbone`` with a new linear classifier and record every epoch.

    Parameters
    ----------
    images : ndarray of uint8, shape (n_samples, S, S, 3)
        The readable images, from :func:`cleanlab_ng.backbones.load_images`.
    labels : ndarray of shape (n_samples,)
    backbone : Backbone
    n_classes : int
    noise_rate : float
        Estimated share of wrong labels; sets the memorisation test (see
        :func:`cleanlab_ng.train.proxy.train_dynamics`).
    schedule : Schedule
        Epochs, batch size, learning rate and weight decay.
    seed : int, default=0
    device : str, default="cpu"
    on_epoch : callable, default=None

    Returns
    -------
    Dynamics
    """
    gen = torch.Generator().manual_seed(seed)
    model, normalise = proxy_model(backbone, n_classes, seed, device)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2)  # uint8 NCHW view, on the host
    y = torch.as_tensor(labels)
    opt = schedule.optimizer(model)
    epochs, batch_size = schedule.epochs, schedule.batch_size
    n_warm = max(1, round(WARMUP_FRACTION * epochs))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: _lr_factor(e, n_warm, epochs))
    n = len(labels)
    everyone = torch.arange(n)

    fields = {k: np.empty((epochs, n), dtype=np.float32)
              for k in ("loss", "p_given", "margin", "entropy")}
    pred = np.empty((epochs, n), dtype=np.int32)
    probas = []
    for epoch in range(epochs):
        train_epoch(model, opt, normalise, pixels, y, everyone, batch_size=batch_size, gen=gen)
        sched.step()
        proba = predict_proba(model, normalise, pixels, everyone, batch_size=batch_size)
        _record_epoch(proba, labels, epoch, fields, pred)
        probas.append(proba.astype(np.float16))
        if on_epoch:
            on_epoch(epoch + 1, epochs)
    return summarise_run(fields, pred, probas, labels, noise_rate=noise_rate, n_warm=n_warm)


def proxy_model(backbone: Backbone, n_classes: int, seed: int, device: str):
    """A fresh trainable copy of the backbone with a new linear classifier, and the function
    that turns uint8 NCHW pixels on the host into the model's normalised input on ``device``.
    """
    torch.manual_seed(seed)  # the new classifier initialises from the global generator
    features = trainable_backbone(backbone, device)
    width = getattr(features, "head_hidden_size", features.num_features)
    model = torch.nn.Sequential(features, torch.nn.Linear(width, n_classes)).to(device)
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1) * 255

    def normalise(pixels: torch.Tensor) -> torch.Tensor:  # uint8 or float, 0..255
        return (pixels.to(device).float() - mean) / std

    return model, normalise


def train_epoch(model, opt, normalise, pixels: torch.Tensor, y: torch.Tensor,
                rows: torch.Tensor, *, batch_size: int, gen: torch.Generator) -> None:
    """One epoch of SGD over ``rows`` in random order, on augmented views."""
    model.train()
    device = next(model.parameters()).device
    pad = max(1, pixels.shape[-1] // 8)  # the CIFAR recipe's 4 px at 32 px, scaled
    order = rows[torch.randperm(len(rows), generator=gen)]
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if len(idx) == 1:  # batch norm cannot train on one sample; it is drawn again next epoch
            continue
        x = normalise(_augment(pixels[idx].to(device).float(), pad, gen))
        with _mixed_precision(device):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y[idx].to(x.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def predict_proba(model, normalise, pixels: torch.Tensor, rows: torch.Tensor, *,
                  batch_size: int) -> np.ndarray:
    """Eval-mode softmax probabilities of ``rows`` on the deterministic view: (len(rows), C)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode(), _mixed_precision(device):
        return torch.cat([
            torch.softmax(model(normalise(pixels[rows[s:s + batch_size]])).float(), -1).cpu()
            for s in range(0, len(rows), batch_size)
        ]).numpy()


def _mixed_precision(device: torch.device):
    """bf16 autocast on a GPU, for its tensor cores; float32 on the CPU, as before."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _augment(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop after reflection padding, and random horizontal flip, per image."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    out[flip] = out[flip].flip(-1)
    return out.contiguous(memory_format=torch.channels_last)
