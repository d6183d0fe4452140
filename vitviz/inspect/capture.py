"""One capture API for everything the app shows: `capture(model, images, want=...)`.

Forward hooks record named artifacts during one no-grad forward pass; forwards are never edited.
Where a module would skip the map (fused attention), capture switches it to its explicit path for
the duration of the call (`need_map` on vitviz kernels, `fused_attn` on timm's XCA/ClassAttn) and
restores every flag, the train/eval mode and the hooks afterwards, whatever happens.

Artifacts (keys are absent where the variant has no such thing):

- ``logits``             (B, classes)
- ``attention``          list over token-attention blocks of exact softmax maps (B, heads, N_q, N_k)
- ``implied_attention``  Performer / Nystromformer: the exact N x N operator the kernel applies to V
                         (``map @ v`` is the kernel's output; the model never builds it): Performer's
                         normalised phi(Q) phi(K)^T, Nystromformer's three-factor product plus its
                         residual depthwise conv as a banded matrix (signed; rows need not sum to 1).
                         Only when asked, and only up to ``max_implied_tokens`` tokens
- ``operator_parts``     the summands of each implied operator by name, e.g. {"nystrom": product,
                         "conv": band} (B, heads, N, N) (only when asked)
- ``operator_shares``    with ``operator_parts``: per part |part @ v| / |output| per (B, heads), the
                         size of its contribution relative to the kernel's output (shares need not
                         add up to 1: the parts' outputs are vectors that partly cancel)
- ``projected_attention`` Linformer: the softmax map over the k projected keys (B, heads, N, k); the
                         kernel's output is this map @ (F v), F = ``kernel.proj_v``
- ``grids``              per token-attention block {"q": (h, w), "k": (h, w), "cls": bool}: the
                         query/key token grids (CvT's keys are strided; LeViT's subsampling attention
                         has fewer queries than keys; CvT's, LeViT's and PiT's grids shrink from stage
                         to stage) and whether token 0 is a class token
- ``xca``                XCiT: cross-covariance maps per block (B, heads, d_h, d_h)
- ``temperatures``       XCiT: the learned XCA temperatures (blocks, heads) as timm stores them: the
                         multiplier t in softmax(t q^ k^T) (the XCiT paper divides by tau: tau = 1 / t)
- ``class_attention``    XCiT: class-token attention per class-attention block (B, heads, N + 1)
- ``qkv``                list over blocks of (q, k, v), each (B, heads, N, d_h) as the attention
                         consumes them (after RoPE; CvT after its convolutional projection)
- ``logit_bias``         LeViT: per token-attention block the additive logit bias its kernel receives
                         (heads, N_q, N_k), None where a block has none: the maps are
                         softmax(q k^T * scale + bias). Only when asked; absent for models without one
- ``codes``              F-SNE: (blocks, 3, code_length), rows c_q, c_k, c_v
- ``token_mixing``       MLP-Mixer (no attention): the first token-mixing layer's weights per block
                         (hidden, N): rows are hidden units, columns tokens (not an N x N map: the
                         token MLP is nonlinear)
- ``fourier_mixing``     FNet (no attention): {"tokens": (2, N, N), "channels": (2, C, C)}, the cosine
                         and sine DFT matrices [C, S] of each axis; the mixing is exactly
                         C_N X C_C - S_N X S_C
- ``seq_pool``           CCT (no class token): the sequence-pooling weights (B, N) over the final tokens, a
                         softmax (each row sums to 1); the head reads exactly sum_i w_i x_i, so w is what the
                         class token's row is elsewhere. On the token grid ``grids[-1]["q"]``
- ``notes``              list of plain-language remarks (why something is absent or approximate)
- ``block_names``        module paths of the attention blocks, for labels
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from timm.models.cait import ClassAttn as CaitClassAttn
from timm.models.xcit import XCA, ClassAttn as XcitClassAttn

from ..layers.attention import AttentionKernel
from ..layers.fourier import dft_parts
from ..layers.qkv_embedding import FullySharedQKV
from ..models.cct import SequencePool
from ..models.cvt import ConvAttention
from ..models.xcit import EmbeddedClassAttention
from .codes import qkv_codes
from .exclusive import eval_mode

ARTIFACTS = ("logits", "attention", "implied_attention", "operator_parts", "operator_shares", "projected_attention",
             "grids", "xca", "temperatures", "class_attention", "qkv", "codes", "token_mixing", "fourier_mixing",
             "seq_pool", "logit_bias")
DEFAULT_WANT = frozenset(ARTIFACTS) - {"implied_attention", "operator_parts", "operator_shares", "qkv", "logit_bias"}
CLASS_ATTENTION_TYPES = (XcitClassAttn, CaitClassAttn)


class Artifacts(Mapping):
    """Read-only mapping of artifact name -> value, with `notes` on what is absent or approximate."""

    def __init__(self, data: dict, notes: list[str]):
        self._data = data
        self.notes = notes

    def __getitem__(self, key):
        if key == "notes":
            return self.notes
        return self._data[key]

    def __iter__(self):
        return iter([*self._data, "notes"])

    def __len__(self):
        return len(self._data) + 1

    def __repr__(self):
        return f"Artifacts({', '.join(self._data)})"


def _want(want: str | Iterable[str] | None) -> frozenset:
    if want is None:
        return DEFAULT_WANT
    want = frozenset([want] if isinstance(want, str) else want) | {"logits"}
    unknown = sorted(want - set(ARTIFACTS))
    if unknown:
        raise ValueError(f"unknown artifacts {unknown}; choose from {', '.join(ARTIFACTS)}")
    return want


def _token_grid(model: nn.Module) -> tuple[int, int] | None:
    embed = getattr(model, "patch_embed", None) or getattr(model, "stem", None)
    grid = getattr(embed, "grid_size", None)
    return tuple(grid) if grid is not None else None


def _heads(x: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N, 3C) -> q, k, v each (B, heads, N, d)."""
    B, N, C3 = x.shape
    return x.reshape(B, N, 3, num_heads, C3 // (3 * num_heads)).permute(2, 0, 3, 1, 4).unbind(0)


class _Recorder:
    """Installs hooks and flips flags; `close()` undoes all of it."""

    def __init__(self, model: nn.Module, want: frozenset, max_implied_tokens: int):
        self.model, self.want, self.max_implied = model, want, max_implied_tokens
        self.data: dict = {}
        self.notes: list[str] = []
        self._handles, self._flags = [], []

    def _set(self, module, name, value):
        self._flags.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    def _hook(self, module, fn, pre=False):
        register = module.register_forward_pre_hook if pre else module.register_forward_hook
        self._handles.append(register(fn))

    def _append(self, key, value):
        self.data.setdefault(key, []).append(value)

    def close(self):
        for handle in self._handles:
            handle.remove()
        for module, name, value in reversed(self._flags):
            setattr(module, name, value)

    # ------------------------------------------------------------------ installers

    def install(self):
        model, grid = self.model, _token_grid(self.model)
        prefix = int(getattr(self.model, "num_prefix_tokens", 1) or 0)
        kernels = xcas = class_attns = 0
        for name, module in model.named_modules():
            if isinstance(module, AttentionKernel):
                parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
                if isinstance(parent, ConvAttention) or hasattr(parent, "kv_grid"):  # per stage: CvT, LeViT, PiT
                    grids = {"q": parent.grid, "k": parent.kv_grid, "cls": parent.has_cls}
                else:
                    grids = {"q": grid, "k": grid, "cls": prefix > 0}
                for note in getattr(parent, "map_notes", ()):  # what the family's maps are (LeViT's biases)
                    if note not in self.notes:
                        self.notes.append(note)
                self._install_kernel(name.rsplit(".", 1)[0], module, grids)
                kernels += 1
            elif isinstance(module, XCA):
                self._install_xca(name, module)
                xcas += 1
            elif isinstance(module, CLASS_ATTENTION_TYPES + (EmbeddedClassAttention,)):
                self._install_class_attention(module)
                class_attns += 1
        if "codes" in self.want and any(isinstance(m, FullySharedQKV) for m in model.modules()):
            self.data["codes"] = qkv_codes(model)
        if xcas and "temperatures" in self.want:
            self.data["temperatures"] = torch.stack([m.temperature.detach().float().reshape(-1).cpu()
                                                     for m in model.modules() if isinstance(m, XCA)])
        if xcas and "grids" in self.want:  # XCiT's patch embedding returns (tokens, (Hp, Wp))
            def on_patches(module, args, out, count=xcas):
                hw = tuple(int(v) for v in out[1])
                self.data["grids"] = [{"q": hw, "k": hw, "cls": False} for _ in range(count)]
            self._hook(model.patch_embed, on_patches)
        if not (kernels or xcas or class_attns):
            self._install_token_mixing()
        for module in model.modules():
            if isinstance(module, SequencePool):
                self._install_seq_pool(module)

    def _install_seq_pool(self, pool: SequencePool):
        self.notes.append("CCT has no class token: its head reads the sequence-pooling weighted sum of the final "
                          "tokens, sum_i w_i x_i with w = softmax over tokens of a linear score; seq_pool is w. "
                          "Views that read a class token elsewhere read w here.")
        if "seq_pool" in self.want:
            def on_weights(module, args, out):
                self.data["seq_pool"] = out.detach().float().cpu()
            self._hook(pool.weights_map, on_weights)

    def _install_kernel(self, block_name: str, kernel: AttentionKernel, grids: dict):
        kind = kernel.map_kind
        record_map = (kind == "exact" and "attention" in self.want) or \
                     (kind == "projected" and "projected_attention" in self.want) or \
                     (kind == "implied" and "implied_attention" in self.want)
        self._append("block_names", block_name)
        if "grids" in self.want:
            self._append("grids", dict(grids))
        if record_map:
            self._set(kernel, "need_map", True)
            key = {"exact": "attention", "projected": "projected_attention", "implied": "implied_attention"}[kind]

            def on_map(module, args, output, key=key):
                self._append(key, output.detach().float().cpu())
            self._hook(kernel.attention_map, on_map)
        parts = kind == "implied" and bool({"operator_parts", "operator_shares"} & self.want)
        if kind == "implied" and ("implied_attention" in self.want or parts):
            self._hook(kernel, self._guard_implied_size, pre=True)
        if parts:
            self._hook(kernel, self._record_parts, pre=True)
        if "qkv" in self.want:
            def on_inputs(module, args):
                self._append("qkv", tuple(t.detach().float().cpu() for t in args[:3]))
            self._hook(kernel, on_inputs, pre=True)
        if "logit_bias" in self.want:
            def on_bias(module, args):
                self._append("logit_bias", args[3].detach().float().cpu() if len(args) > 3 else None)
            self._hook(kernel, on_bias, pre=True)

    def _guard_implied_size(self, kernel, args):
        n = args[0].shape[-2]
        if n > self.max_implied:
            raise ValueError(f"implied attention of {n} tokens is {n}x{n} per head; capture allows up to "
                             f"max_implied_tokens={self.max_implied} (raise it, or use a smaller input)")

    def _record_parts(self, kernel, args):
        q, k, v = args[:3]
        parts = kernel.operator_parts(q, k, *args[3:])  # args[3]: a logit bias (LeViT), part of the operator
        outputs = {name: part @ v.float() for name, part in parts.items()}
        total = sum(outputs.values()).flatten(-2).norm(dim=-1)
        self._append("operator_parts", {name: part.detach().float().cpu() for name, part in parts.items()})
        self._append("operator_shares", {name: (out.flatten(-2).norm(dim=-1) / total).detach().float().cpu()
                                         for name, out in outputs.items()})

    def _install_xca(self, name: str, xca: XCA):
        self._append("block_names", name)
        if "xca" in self.want:
            self._set(xca, "fused_attn", False)
            self._hook(xca.attn_drop, lambda m, a, out: self._append("xca", out.detach().float().cpu()))
        if "qkv" in self.want:
            self._hook(xca.qkv, lambda m, a, out: self._append(
                "qkv", tuple(t.detach().float().cpu() for t in _heads(out, xca.num_heads))))

    def _install_class_attention(self, attn: nn.Module):
        if "class_attention" not in self.want:
            return
        if isinstance(attn, EmbeddedClassAttention):  # fused only: recompute its map from its q and k
            def on_qkv(module, args, out):
                q, k, _ = _heads(out, attn.num_heads)
                cls_map = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(-1)
                self._append("class_attention", cls_map[:, :, 0].detach().float().cpu())
            self._hook(attn.qkv, on_qkv)
            return
        self._set(attn, "fused_attn", False)
        self._hook(attn.attn_drop,
                   lambda m, a, out: self._append("class_attention", out[:, :, 0].detach().float().cpu()))

    def _install_token_mixing(self):
        model = self.model
        blocks = getattr(model, "blocks", [])
        tokens = [getattr(b, "mlp_tokens", None) for b in blocks]
        if blocks and all(t is not None for t in tokens):
            self.notes.append("MLP-Mixer has no attention: each block mixes tokens by an MLP along the token axis, "
                              "W2 GELU(W1 X + b1) + b2, which is nonlinear, so there is no N x N map; shown are the "
                              "first layer's weights W1 (hidden units x tokens) per block.")
            if "token_mixing" in self.want:
                self.data["token_mixing"] = [t.fc1.weight.detach().float().cpu() for t in tokens]
        elif blocks and all(hasattr(b, "mixing") for b in blocks):
            self.notes.append("FNet has no attention: every block mixes tokens by the fixed, parameter-free "
                              "Re(FFT_tokens(FFT_channels(X))) = C_N X C_C - S_N X S_C (C, S: cosine and sine DFT "
                              "matrices); both terms are shown.")
            if "fourier_mixing" in self.want:
                self.data["fourier_mixing"] = {"tokens": torch.stack(dft_parts(model.patch_embed.num_patches)),
                                               "channels": torch.stack(dft_parts(model.embed_dim))}
        else:
            self.notes.append(f"{type(model).__name__} has no attention module that capture knows.")
        if self.data.get("grids") is None and _token_grid(model) is not None and "grids" in self.want:
            self.data["grids"] = [{"q": _token_grid(model), "k": _token_grid(model), "cls": False}]


def capture(model: nn.Module, images: torch.Tensor, want: str | Iterable[str] | None = None, *,
            max_implied_tokens: int = 1024) -> Artifacts:
    """Run `model` on normalised `images` (B, 3, H, W) once and return the artifacts in `want`.

    The default `want` is everything except ``implied_attention`` and ``qkv`` (ask for those).
    The model's weights, train/eval mode, fused-attention flags and hooks are as before afterwards;
    the forward runs in eval mode under no_grad on the model's device; artifacts are float32 on CPU.
    """
    want = _want(want)
    device = next(model.parameters()).device
    recorder = _Recorder(model, want, max_implied_tokens)
    # hooks and flags live on the (possibly shared) model: one capture at a time per model
    with eval_mode(model):
        try:
            recorder.install()
            with torch.no_grad():
                logits = model(images.to(device))
        finally:
            recorder.close()
    data = {k: v for k, v in recorder.data.items() if k in want or k == "block_names"}
    if all(b is None for b in data.get("logit_bias", [])):
        data.pop("logit_bias", None)
    data["logits"] = logits.detach().float().cpu()
    notes = recorder.notes
    if "implied_attention" in data:
        notes.append("implied_attention is exactly the N x N operator the efficient kernel applies to V (the model "
                     "never builds it): it is what this model computes, and it approximates softmax attention. "
                     "Nystromformer's includes its residual conv and can be negative, with rows not summing to 1.")
    if "projected_attention" in data:
        notes.append("Linformer attends over k projected keys, not over tokens: projected_attention is N x k, "
                     "applied to the projected values F V.")
    return Artifacts(data, notes)
