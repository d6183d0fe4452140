"""CCT: Compact Convolutional Transformer (Hassani et al., "Escaping the Big Data Paradigm with Compact
Transformers", arXiv 2104.05704).

- **Convolutional tokenizer** (`patch_embed`): `tokenizer_layers` x [Conv2d(k, stride, padding, no bias) -> ReLU
  -> MaxPool2d(3, 2, 1)]; the last conv has the embedding width, earlier ones 64 channels. CCT-7/3x1 on
  32 px: one 3x3 conv, stride 1 -> max-pool stride 2 -> a 16 x 16 grid of 256 tokens.
- A learnable position embedding, then `depth` transformer blocks (`qkv` without bias, as the authors' code)
  with stochastic depth rising linearly from 0 to `drop_path_rate` and dropout on the attention weights.
- **No class token.** After the blocks and the final LayerNorm, **sequence pooling** reads the tokens:
  w = softmax_over_tokens(x_L W_s + b_s) (one linear score per token), pooled = sum_i w_i x_L,i; the head is a
  Linear on the pooled vector. `seq_pool.weights_map` is an Identity hook point for w (B, N), which
  `vitviz.inspect.capture` records as the ``seq_pool`` artifact: it is the head's only read-out of the tokens,
  so the views that read a class token elsewhere (rollout's class row, Chefer relevance) read w here.

Block layout (`mlp_norm`): the authors' code normalises the residual stream itself between attention and MLP,
x = x + attn(LN_1(x)); x = LN_2(x); x = x + mlp(x) (`mlp_norm="stream"`, the default, faithful to the
published results); `mlp_norm="branch"` gives the standard pre-norm block x = x + mlp(LN_2(x)) [ours]. Both
have the same parameters.

Attention is `vitviz.layers.TokenAttention` with one of vitviz's kernels, as for ViT, so Vision X-formers'
swap (arXiv 2107.02239, which reports CCT with Nystromformer / Performer attention) is one argument:
`vitviz_cct_7_3x1_32_{softmax,nystrom,performer}`. Nystromformer keeps its residual depthwise conv (kernel
33) on V: CCT's keys are not strided, so the conv applies as in ViT. Nystromformer and Performer kernels take
no attention dropout (they never build the map). Kernel options as for ViT: num_features (Performer),
num_landmarks / pinv_iterations / conv_kernel (Nystromformer; the tokenizer's kernel is `tokenizer_kernel`).

CCT-7/3x1 at 32 px: dim 256, 7 layers, 4 heads, MLP ratio 2, attention dropout 0.1, stochastic depth 0.1:
3,760,139 parameters at 10 classes (the paper: 3.76M).
"""
from __future__ import annotations

from functools import partial

import torch
from timm.layers import DropPath, Mlp, to_2tuple, trunc_normal_
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import nn

from ..layers.token_attention import TokenAttention
from ._common import build_variant, cifar_cfg, papers

CCT_7_3X1_32 = dict(img_size=32, embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0, tokenizer_layers=1,
                    tokenizer_kernel=3, tokenizer_stride=1, tokenizer_padding=1, attn_drop_rate=0.1,
                    drop_path_rate=0.1)
MLP_NORMS = ("stream", "branch")
KERNEL_OPTIONS = ("num_features", "num_landmarks", "pinv_iterations", "conv_kernel")


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ConvTokenizer(nn.Module):
    """[Conv2d (no bias) -> ReLU -> MaxPool2d(3, 2, 1)] x conv_layers; (B, C, H, W) -> tokens (B, N, C)."""

    def __init__(self, img_size: tuple[int, int], in_chans: int, embed_dim: int, conv_layers: int = 1,
                 kernel: int = 3, stride: int = 1, padding: int = 1, hidden_chans: int = 64,
                 pool_kernel: int = 3, pool_stride: int = 2, pool_padding: int = 1):
        super().__init__()
        chans = [in_chans] + [hidden_chans] * (conv_layers - 1) + [embed_dim]
        self.convs = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], kernel, stride=stride, padding=padding, bias=False),
                          nn.ReLU(inplace=False),
                          nn.MaxPool2d(pool_kernel, pool_stride, pool_padding))
            for i in range(conv_layers)])
        h, w = img_size
        for _ in range(conv_layers):
            h, w = (_out(_out(s, kernel, stride, padding), pool_kernel, pool_stride, pool_padding) for s in (h, w))
        self.img_size, self.grid_size, self.num_patches = tuple(img_size), (h, w), h * w
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x).flatten(2).transpose(1, 2)


class SequencePool(nn.Module):
    """w = softmax over tokens of a linear score; returns sum_i w_i x_i (B, C). w passes `weights_map`."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.weights_map = nn.Identity()  # hook point for the pooling weights (B, N)

    def pool_weights(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x).squeeze(-1).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights_map(self.pool_weights(x))
        return (w.unsqueeze(1) @ x).squeeze(1)


class CCTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_tokens: int, mlp_ratio: float = 2.0, attention: str = "softmax",
                 attn_drop: float = 0.0, drop_path: float = 0.0, mlp_norm: str = "stream", **kernel_options):
        super().__init__()
        if mlp_norm not in MLP_NORMS:
            raise ValueError(f"mlp_norm must be one of {MLP_NORMS}, got {mlp_norm!r}")
        self.mlp_norm = mlp_norm
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TokenAttention(dim, num_heads, attention, seq_len=num_tokens, qkv_bias=False,
                                   attn_drop=attn_drop if attention in ("softmax", "linformer") else 0.0,
                                   **kernel_options)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        if self.mlp_norm == "stream":  # the authors' code: the stream itself is normalised
            x = self.norm2(x)
            return x + self.drop_path(self.mlp(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CCT(nn.Module):
    """Conv tokenizer -> + position embedding -> blocks -> LayerNorm -> sequence pooling -> head."""

    def __init__(self, img_size=32, in_chans: int = 3, num_classes: int = 10, embed_dim: int = 256, depth: int = 7,
                 num_heads: int = 4, mlp_ratio: float = 2.0, tokenizer_layers: int = 1, tokenizer_kernel: int = 3,
                 tokenizer_stride: int = 1, tokenizer_padding: int = 1, attn_drop_rate: float = 0.1,
                 drop_path_rate: float = 0.1, drop_rate: float = 0.0, attention: str = "softmax",
                 mlp_norm: str = "stream", **kernel_options):
        super().__init__()
        unknown = sorted(set(kernel_options) - set(KERNEL_OPTIONS))
        if unknown:
            raise TypeError(f"unknown CCT arguments {unknown}")
        self.num_classes, self.num_features, self.embed_dim = num_classes, embed_dim, embed_dim
        self.num_prefix_tokens = 0
        self.in_chans = in_chans
        self.grad_checkpointing = False
        self.patch_embed = ConvTokenizer(to_2tuple(img_size), in_chans, embed_dim, tokenizer_layers, tokenizer_kernel,
                                         tokenizer_stride, tokenizer_padding)
        num_tokens = self.patch_embed.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth rises linearly
        self.blocks = nn.ModuleList([
            CCTBlock(embed_dim, num_heads, num_tokens, mlp_ratio, attention, attn_drop_rate, rates[i], mlp_norm,
                     **kernel_options)
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.seq_pool = SequencePool(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        reduction = img_size if isinstance(img_size, int) else img_size[0]
        reduction = reduction // self.patch_embed.grid_size[0]
        self.feature_info = [dict(num_chs=embed_dim, reduction=reduction, module=f"blocks.{i}") for i in range(depth)]
        self.apply(_init_weights)
        trunc_normal_(self.pos_embed, std=0.2)
        self.vitviz_attention = attention

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes: int, global_pool=None):
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def no_weight_decay(self):
        return {"pos_embed"}

    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def _tokens(self, x):
        return self.pos_drop(self.patch_embed(x) + self.pos_embed)

    def _block(self, block, x):
        return checkpoint(block, x) if self.grad_checkpointing and torch.is_grad_enabled() else block(x)

    def forward_intermediates(self, x, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False):
        """timm's feature-extraction interface: block outputs (last n if `indices` is an int) as (B, C, h, w)
        maps on the token grid (NCHW) or (B, N, C) tokens (NLC); `norm` applies the final LayerNorm."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be NCHW or NLC, got {output_fmt!r}")
        take, last = feature_take_indices(len(self.blocks), indices)
        h, w = self.patch_embed.grid_size
        x = self._tokens(x)
        intermediates = []
        for i, block in enumerate(self.blocks[:last + 1] if stop_early else self.blocks):
            x = self._block(block, x)
            if i in take:
                y = self.norm(x) if norm else x
                intermediates.append(y.transpose(1, 2).reshape(x.shape[0], -1, h, w) if output_fmt == "NCHW" else y)
        return intermediates if intermediates_only else (self.norm(x), intermediates)

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True):
        take, last = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.seq_pool = nn.Identity()
            self.reset_classifier(0)
        return take

    def forward_features(self, x):
        x = self._tokens(x)
        for block in self.blocks:
            x = self._block(block, x)
        return self.norm(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = self.seq_pool(x)
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _init_weights(module):
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _create_cct(variant: str, pretrained: bool, config: dict, **kwargs) -> CCT:
    return build_variant(partial(CCT, **config), variant, pretrained, **kwargs)


_CCT_CFG = dict(first_conv="patch_embed.convs.0.0", classifier="head")
_PAPERS = {"softmax": ("cct",), "nystrom": ("cct", "vix", "nystrom"), "performer": ("cct", "vix", "performer")}
default_cfgs = generate_default_cfgs({
    f"vitviz_cct_7_3x1_32_{kind}": cifar_cfg(**_CCT_CFG, **papers(*keys)) for kind, keys in _PAPERS.items()
})


@register_model
def vitviz_cct_7_3x1_32_softmax(pretrained=False, **kwargs):
    return _create_cct("vitviz_cct_7_3x1_32_softmax", pretrained, dict(CCT_7_3X1_32, attention="softmax"), **kwargs)


@register_model
def vitviz_cct_7_3x1_32_nystrom(pretrained=False, **kwargs):
    return _create_cct("vitviz_cct_7_3x1_32_nystrom", pretrained, dict(CCT_7_3X1_32, attention="nystrom"), **kwargs)


@register_model
def vitviz_cct_7_3x1_32_performer(pretrained=False, **kwargs):
    return _create_cct("vitviz_cct_7_3x1_32_performer", pretrained, dict(CCT_7_3X1_32, attention="performer"),
                       **kwargs)
