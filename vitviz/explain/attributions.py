"""Input attributions with captum: which pixels a prediction depends on.

`attribute(model, images, target)` returns one attribution per input value, (B, 3, H, W), for
normalised float images already on the model's device; `to_heatmap` turns it into a (B, H, W)
map in [0, 1] for display.

The model is left as it was found: it runs in eval mode for the attribution, then every
module's train/eval flag and every parameter's `requires_grad` flag are restored; weights and
their `.grad` are never touched (parameters are frozen while attributing, gradients are taken
with respect to a detached copy of the input only). Works when called under `torch.no_grad()`.

Memory is bounded by `internal_batch_size`: images are processed in chunks of at most that
many, and within a chunk of b images every forward pass sees at most
max(b, internal_batch_size) images (Integrated Gradients: captum's `internal_batch_size`;
Occlusion: `perturbations_per_eval = internal_batch_size // b`; SmoothGrad:
`nt_samples_batch_size = internal_batch_size // b`, each at least 1).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..inspect.exclusive import exclusive

METHODS = {
    "integrated_gradients": "Integrated Gradients: gradients averaged along the straight path from a "
                            "baseline to the image, times (image - baseline); signed, sums to the logit change",
    "saliency": "Saliency: absolute gradient of the target logit with respect to each input value",
    "occlusion": "Occlusion: drop in the target logit when a square window is replaced by the baseline",
    "smoothgrad": "SmoothGrad: absolute gradients averaged over noisy copies of the image (NoiseTunnel + Saliency)",
}


@contextlib.contextmanager
def frozen_eval(model: nn.Module):
    """Eval mode and frozen parameters inside; each module's `training` and each parameter's
    `requires_grad` flag restored on exit."""
    with exclusive(model):  # another thread must not see (or restore) these flags meanwhile
        modes = [(m, m.training) for m in model.modules()]
        flags = [(p, p.requires_grad) for p in model.parameters()]
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield model
        finally:
            for m, training in modes:
                m.training = training
            for p, flag in flags:
                p.requires_grad_(flag)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")


def _baseline(baseline, images: torch.Tensor):
    """captum baseline for a chunk: "zeros" (in normalised space: the dataset-mean image),
    a number, or a tensor broadcastable to the images."""
    if isinstance(baseline, str):
        if baseline != "zeros":
            raise ValueError(f"unknown baseline {baseline!r}; use 'zeros', a number or a tensor")
        return torch.zeros_like(images)
    if isinstance(baseline, (int, float)):
        return torch.full_like(images, float(baseline))
    if isinstance(baseline, torch.Tensor):
        return baseline.to(images).expand_as(images).contiguous()
    raise TypeError(f"baseline must be 'zeros', a number or a tensor, not {type(baseline).__name__}")


def _targets(model: nn.Module, images: torch.Tensor, target, chunk: int) -> torch.Tensor:
    """(B,) long tensor of target classes; the predicted class where target is None."""
    B = images.shape[0]
    if target is None:
        with torch.no_grad():
            preds = [model(images[i:i + chunk]).argmax(-1) for i in range(0, B, chunk)]
        return torch.cat(preds)
    target = torch.as_tensor(target, device=images.device, dtype=torch.long)
    if target.dim() == 0:
        target = target.expand(B)
    if target.shape != (B,):
        raise ValueError(f"target must be one class or one per image ({B}), got shape {tuple(target.shape)}")
    return target


def attribute(model: nn.Module, images: torch.Tensor, target=None, method: str = "integrated_gradients", *,
              internal_batch_size: int = 16, n_steps: int = 32, baseline="zeros", nt_samples: int = 8,
              stdevs: float = 0.1, occlusion_window: int = 4, occlusion_stride: int | None = None) -> torch.Tensor:
    """Attributions (B, 3, H, W) of `target` (default: the predicted class) for normalised images.

    method: one of `METHODS`. `baseline` ("zeros" = the mean image in normalised space, a number
    or a tensor) is the reference for Integrated Gradients and the fill value for Occlusion.
    `n_steps`: Integrated Gradients path steps. `nt_samples`, `stdevs`: SmoothGrad noise samples
    and their standard deviation (in normalised units). `occlusion_window` / `occlusion_stride`
    (default: the window): square occluding patch over all channels, in pixels.
    Saliency and SmoothGrad return absolute gradients; the other two are signed.
    """
    _check_method(method)
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if internal_batch_size < 1:
        raise ValueError("internal_batch_size must be at least 1")
    from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency

    images = images.detach()
    chunk = internal_batch_size
    with frozen_eval(model), torch.enable_grad():
        targets = _targets(model, images, target, chunk)
        out = []
        for i in range(0, images.shape[0], chunk):
            x = images[i:i + chunk].clone().requires_grad_()
            t = targets[i:i + chunk]
            b = x.shape[0]
            per_image = max(1, internal_batch_size // b)
            if method == "integrated_gradients":
                attr = IntegratedGradients(model).attribute(
                    x, baselines=_baseline(baseline, x), target=t, n_steps=n_steps,
                    internal_batch_size=max(b, internal_batch_size))
            elif method == "saliency":
                attr = Saliency(model).attribute(x, target=t, abs=True)
            elif method == "occlusion":
                C = x.shape[1]
                stride = occlusion_stride or occlusion_window
                fill = _baseline(baseline, x)
                attr = Occlusion(model).attribute(
                    x, sliding_window_shapes=(C, occlusion_window, occlusion_window),
                    strides=(C, stride, stride), baselines=fill, target=t, perturbations_per_eval=per_image)
            else:  # smoothgrad
                attr = NoiseTunnel(Saliency(model)).attribute(
                    x, nt_type="smoothgrad", nt_samples=nt_samples, nt_samples_batch_size=min(per_image, nt_samples),
                    stdevs=stdevs, target=t, abs=True)
            out.append(attr.detach())
    return torch.cat(out).to(images.dtype)


def to_heatmap(attr: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) attributions -> (B, H, W): |attr| summed over channels, divided by each sample's
    maximum so it lies in [0, 1] (an all-zero attribution stays zero)."""
    heat = attr.detach().abs().sum(dim=1)
    peak = heat.flatten(1).amax(dim=1).clamp_min(torch.finfo(heat.dtype).tiny)
    return heat / peak[:, None, None]
