"""Gradient-weighted attention relevance (Chefer, Gur & Wolf, "Generic Attention-model Explainability
for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV 2021).

With A_l the attention map of block l (B, heads, N, N) and grad A_l the gradient of the target
class's logit with respect to it, relevance starts at the identity and is accumulated in forward
order:

    A_bar_l = mean_h((grad A_l * A_l)^+)          R <- R + A_bar_l @ R

and the explanation is the class token's row of R without its own column (models without a class
token: the mean over the patch rows, since the head reads the mean of the patch tokens).

Which maps, per family (all of them the operators the model computes, never a re-derived softmax):

- ViT softmax: the exact softmax maps.
- Performer / Nystromformer: the kernel's exact implied N x N operator (`implied_attention`, the one
  capture shows; Nystromformer's includes its residual conv and is signed).
- Linformer: its N x k map over projected keys has no token-to-token meaning, so relevance uses
  A F, the N x N operator the kernel applies to the (unprojected) values: softmax(Q (E K)^T) F, with
  F the learned value projection (k x N). Signed where F is.
- CvT: the last stage only (the one with the class token; earlier stages have other grids and no
  class token). Its keys are strided, so A is N_q x N_k; [ours] A_bar is mapped back onto the query
  grid by sharing each key's relevance equally among the query-grid tokens of its stride cell
  (the class key maps to the class token), which keeps row sums.
- CCT: no class token; its head reads the sequence pooling p = sum_i w_i x_i of the final tokens, a
  single-query attention over them (one "head", map w (B, 1, N), values the tokens X it pools). [ours,
  following the rule] The pooled read-out is treated as a class token that attends once, after the last
  block, and never feeds back (like XCiT's class-attention rows): its row is e_p + A_bar_p @ R with
  A_bar_p = (grad w * w)^+, grad w = dL/dp X^T; without its own column, the explanation is A_bar_p @ R.
  (The query-mean used for pooled models without a sequence pooling would misstate what the head reads.)
- PiT: as CvT, the last stage only (its pooling layers, depthwise convs, change the grid between stages).
- LeViT: no class token (mean pooling) and no convolution between stages: its subsampling attention
  (N_q x N_k, queries on every second token of every second row) has no residual, its queries become
  the next stage's tokens. [ours, Chefer's rule without the skip] R <- A_bar @ R there (R: N_q x N),
  R <- R + A_bar @ R in the blocks; the explanation is the mean of R's rows, on the first stage's grid.
  The maps include LeViT's attention biases (what the model computes).
- XCiT: its XCA blocks mix channels, not tokens (their maps are d_h x d_h), so relevance is built on
  the class-attention blocks: the patch tokens after the XCA blocks are the inputs, and each
  class-attention block updates the class token's row only, R[0] <- R[0] + A_bar[0] @ R.

The gradient with respect to a map. Every kernel's output is O = A V exactly (eval mode, no
dropout), so dL/dA = dL/dO V^T with q and k held fixed; this is what backpropagation gives for a map
that is part of the graph (softmax's explicit path, tested), and the only way to get it for kernels
whose forward never builds A (Performer, Nystromformer and XCiT's fused class attention compute
O without it). Gradients are taken with `torch.autograd.grad` with respect to the recorded outputs
only: the weights' `.grad` and `requires_grad` flags are not touched; hooks and flags are installed
inside `eval_mode(model)` (the model's lock) and removed afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from timm.models.cait import ClassAttn as CaitClassAttn
from timm.models.xcit import ClassAttn as XcitClassAttn

from ..layers.attention import AttentionKernel, LinformerKernel
from ..models.cct import SequencePool
from ..models.cvt import ConvAttention
from ..models.xcit import EmbeddedClassAttention
from ..inspect.exclusive import eval_mode

__all__ = ["Relevance", "chefer_relevance", "relevance_problem", "relevance_from_maps", "stride_cells"]


@dataclass
class Relevance:
    relevance: torch.Tensor          # (B, h, w) patch relevance, float32 on CPU (>= 0 for exact maps)
    target: torch.Tensor             # (B,) explained class
    logits: torch.Tensor             # (B, classes) of the clean images
    grid: tuple[int, int]
    what: str                        # which maps it was built on
    notes: list[str] = field(default_factory=list)


def _token_grid(model: nn.Module):
    embed = getattr(model, "patch_embed", None) or getattr(model, "stem", None)
    grid = getattr(embed, "grid_size", None)
    return tuple(int(g) for g in grid) if grid is not None else None


def _kernels(model: nn.Module) -> list[tuple[str, AttentionKernel, nn.Module | None]]:
    return [(name, m, model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None)
            for name, m in model.named_modules() if isinstance(m, AttentionKernel)]


def _class_attentions(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (XcitClassAttn, CaitClassAttn, EmbeddedClassAttention))]


def relevance_problem(model: nn.Module) -> str | None:
    """Why `chefer_relevance` cannot explain this model, or None if it can."""
    if _kernels(model) or _class_attentions(model):
        return None
    return ("This model has no attention map (it mixes tokens by an MLP or a Fourier transform), so gradient-"
            "weighted attention relevance is not defined for it.")


def stride_cells(grid: tuple[int, int], kv_grid: tuple[int, int], has_cls: bool) -> torch.Tensor:
    """(N_k, N_q) matrix U spreading each strided key over the query-grid tokens of its stride cell (equal
    shares summing to 1); the class key (first) maps to the class token. Query token (r, c) belongs to key
    cell (floor(r * hk / h), floor(c * wk / w))."""
    h, w = grid
    hk, wk = kv_grid
    rows = (torch.arange(h) * hk // h)[:, None] * wk + (torch.arange(w) * wk // w)[None, :]
    owner = rows.flatten()                                      # key cell of each query-grid token
    u = torch.zeros(hk * wk, h * w)
    u[owner, torch.arange(h * w)] = 1.0
    u = u / u.sum(1, keepdim=True).clamp_min(1.0)
    if has_cls:
        u = torch.block_diag(torch.ones(1, 1), u)
    return u


def relevance_from_maps(maps, grads, *, rows_only: bool = False, key_to_query: torch.Tensor | None = None,
                        subsampling=None) -> torch.Tensor:
    """Chefer's rule on given maps and gradients, in forward order: R = I; R <- R + mean_h((g * A)^+) @ R.

    maps, grads: per block (B, heads, N_q, N_k). rows_only: class-attention blocks (N_q = 1) update only
    R's class-token row. key_to_query: (N_k, N) applied to A_bar's key axis when keys are strided.
    subsampling: per block, True where the block's queries replace its tokens without a residual (LeViT's
    subsampling attention, N_q < N_k): there R <- A_bar @ R, and R becomes (B, N_q, N).
    Returns R (B, N_last, N) in float64 (N x N without subsampling blocks)."""
    R = None
    for i, (a, g) in enumerate(zip(maps, grads)):
        a_bar = (g.double() * a.double()).clamp_min(0).mean(1)          # (B, N_q, N_k)
        if key_to_query is not None and a_bar.shape[-1] != a_bar.shape[-2] and not rows_only:
            a_bar = a_bar @ key_to_query.to(a_bar)
        n = a_bar.shape[-1]
        if R is None:
            R = torch.eye(n, dtype=torch.float64, device=a_bar.device).expand(a_bar.shape[0], n, n).clone()
        if subsampling is not None and subsampling[i]:
            R = a_bar @ R
        elif rows_only:
            R[:, :1] = R[:, :1] + a_bar[:, :1] @ R
        else:
            R = R + a_bar @ R
    return R


class _Recorder:
    def __init__(self):
        self.handles, self.flags = [], []
        self.blocks: list[dict] = []
        self.pool: dict | None = None

    def set(self, module, name, value):
        self.flags.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    def hook(self, module, fn, pre=False):
        register = module.register_forward_pre_hook if pre else module.register_forward_hook
        self.handles.append(register(fn))

    def close(self):
        for h in self.handles:
            h.remove()
        for module, name, value in reversed(self.flags):
            setattr(module, name, value)

    def kernel(self, kernel: AttentionKernel):
        entry: dict = {"kernel": kernel}
        self.set(kernel, "need_map", True)

        def on_map(module, args, out):
            entry["map"] = out.detach()

        def on_kernel(module, args, out):
            entry["v"], entry["out"] = args[2].detach(), out
            self.blocks.append(entry.copy())
        self.hook(kernel.attention_map, on_map)
        self.hook(kernel, on_kernel)

    def seq_pool(self, pool: SequencePool):
        """The sequence pooling's weights w (B, N), the tokens X it pools and its output p = w X."""
        entry: dict = {}
        self.hook(pool.weights_map, lambda m, a, out: entry.__setitem__("map", out.detach()))

        def on_pool(module, args, out):
            entry["v"], entry["out"] = args[0].detach(), out
            self.pool = entry
        self.hook(pool, on_pool)

    def class_attention(self, attn: nn.Module):
        entry: dict = {}
        heads = attn.num_heads

        def split(t):  # (B, N, C) -> (B, heads, N, d)
            B, N, C = t.shape
            return t.reshape(B, N, heads, C // heads).transpose(1, 2)

        if isinstance(attn, EmbeddedClassAttention):
            def on_qkv(module, args, out):
                B, N, C3 = out.shape
                q, k, v = out.detach().reshape(B, N, 3, heads, C3 // (3 * heads)).permute(2, 0, 3, 1, 4)
                entry["map"] = ((q[:, :, :1].float() * attn.scale) @ k.float().transpose(-2, -1)).softmax(-1)
                entry["v"] = v
            self.hook(attn.qkv, on_qkv)
        else:
            self.set(attn, "fused_attn", False)
            self.hook(attn.attn_drop, lambda m, a, out: entry.__setitem__("map", out.detach()))
            self.hook(attn.v, lambda m, a, out: entry.__setitem__("v", split(out.detach())))

        def on_proj(module, args):
            entry["out"] = args[0]                      # (B, 1, C) = heads of A V, concatenated
            entry["class_attention"] = True
            self.blocks.append(entry.copy())
        self.hook(attn.proj, on_proj, pre=True)


def _targets(logits: torch.Tensor, target) -> torch.Tensor:
    B = logits.shape[0]
    if target is None:
        return logits.argmax(-1)
    t = torch.as_tensor(target, dtype=torch.long, device=logits.device)
    if t.dim() == 0:
        t = t.expand(B)
    if t.shape != (B,):
        raise ValueError(f"target must be one class or one per image ({B}), got shape {tuple(t.shape)}")
    return t


def chefer_relevance(model: nn.Module, images: torch.Tensor, target=None) -> Relevance:
    """Chefer et al. (2021) relevance of `target` (a class, one per image, or None for the predicted class)
    for normalised `images` (B, 3, H, W) on the model's device; see the module docstring for the maps used.
    Raises ValueError for models without attention maps (`relevance_problem`)."""
    problem = relevance_problem(model)
    if problem is not None:
        raise ValueError(problem)
    device = next(model.parameters()).device
    notes: list[str] = []
    kernels, class_attns = _kernels(model), _class_attentions(model)
    key_to_query, rows_only, subsampling = None, False, None
    if kernels:
        parents = [p for _, _, p in kernels]
        family = type(model).__name__
        if any(getattr(p, "subsamples", False) for p in parents):  # LeViT: stages joined by attention
            chosen = [k for _, k, _ in kernels]
            subsampling = [bool(getattr(p, "subsamples", False)) for p in parents]
            grid, has_cls = tuple(parents[0].kv_grid), bool(parents[0].has_cls)
            sizes = " -> ".join(f"{p.grid[0]}x{p.grid[1]}" for p in [parents[0]] + [p for p in parents if p.subsamples])
            what = f"{family}: all {len(chosen)} blocks, through its subsampling attention ({sizes} tokens)"
            notes.append(f"{family}: its stages are joined by subsampling attention (fewer queries than keys, no "
                         "residual: the queries become the next stage's tokens), so relevance runs through every "
                         "block: R <- R + A_bar @ R in the blocks, R <- A_bar @ R at a subsampling attention [ours, "
                         "Chefer's rule without the skip]; shown on the first stage's grid.")
        elif any(isinstance(p, ConvAttention) or hasattr(p, "kv_grid") for p in parents):  # stages: CvT, PiT
            last = parents[-1]
            chosen = [k for (_, k, p) in kernels if hasattr(p, "kv_grid") and p.grid == last.grid]
            grid, has_cls = tuple(last.grid), bool(last.has_cls)
            what = (f"{family} last stage ({len(chosen)} blocks on its {grid[0]}x{grid[1]} grid"
                    f"{' with the class token' if has_cls else ''})")
            notes.append(f"{family}: relevance uses the last stage only (the earlier stages have other token grids, "
                         "joined to it by a convolution, which Chefer's rule does not pass through).")
            if tuple(last.kv_grid) != grid:
                key_to_query = stride_cells(grid, tuple(last.kv_grid), has_cls)
                notes.append(f"{family}'s keys are strided ({last.kv_grid[0]}x{last.kv_grid[1]} key grid): each "
                             "key's relevance is shared equally by the query-grid tokens of its stride cell [ours].")
        else:
            chosen = [k for _, k, _ in kernels]
            grid = _token_grid(model)
            has_cls = int(getattr(model, "num_prefix_tokens", 0) or 0) > 0 and \
                getattr(model, "global_pool", "token") == "token"
            kind = chosen[0].map_kind
            what = {"exact": "softmax attention maps",
                    "implied": "the kernels' exact implied N x N operators (what the model computes)",
                    "projected": "Linformer's N x N operator softmax(Q (EK)^T) F applied to the values"}[kind]
            if isinstance(chosen[0], LinformerKernel):
                notes.append("Linformer: its N x k map over projected keys has no token-to-token meaning; "
                             "relevance is built on A F (the map times the value projection), the N x N "
                             "operator the kernel applies to the values, which can be signed.")
            if kind == "implied":
                notes.append("Efficient attention: relevance uses the operator the model computes, which "
                             "approximates softmax attention.")
    else:
        chosen = class_attns
        grid = _token_grid(model)
        has_cls, rows_only = True, True
        what = f"XCiT class-attention blocks ({len(chosen)})"
        notes.append("XCiT: its XCA blocks attend across channels (d_h x d_h maps), not tokens, so relevance is "
                     "built on the class-attention blocks; the patch tokens they read are its inputs.")

    pools = [m for m in model.modules() if isinstance(m, SequencePool)] if kernels and not has_cls else []
    if pools:
        what += ", read at the sequence pooling"
        notes.append("CCT has no class token: relevance is read at its sequence pooling, the head's only read-out, "
                     "as a class token that attends once after the last block: (grad w * w)^+ @ R, w the pooling "
                     "weights [ours, following Chefer's rule].")

    recorder = _Recorder()
    x = images.detach().to(device).clone().requires_grad_(True)
    with eval_mode(model):
        try:
            for module in chosen:
                (recorder.kernel if isinstance(module, AttentionKernel) else recorder.class_attention)(module)
            if pools:
                recorder.seq_pool(pools[-1])
            with torch.enable_grad():
                logits = model(x)
                targets = _targets(logits, target)
                score = logits.gather(1, targets[:, None]).sum()
                outs = [b["out"] for b in recorder.blocks] + ([recorder.pool["out"]] if pools else [])
                grads_out = torch.autograd.grad(score, outs, allow_unused=True)
        finally:
            recorder.close()
    if pools:  # the pooled read-out: dL/dw = dL/dp X^T (p = w X), one query, one head
        pool, g_pool = recorder.pool, grads_out[-1]
        g_pool = torch.zeros_like(pool["out"]) if g_pool is None else g_pool
        pool_bar = (pool["map"].double() * (pool["v"].double() @ g_pool.double()[:, :, None])[..., 0]).clamp_min(0)
    maps, grads = [], []
    for block, g_out in zip(recorder.blocks, grads_out):
        a, v = block["map"].float(), block["v"].float()
        g_out = torch.zeros_like(block["out"]) if g_out is None else g_out
        if block.get("class_attention"):
            B, _, C = g_out.shape
            g_out = g_out.reshape(B, 1, v.shape[1], C // v.shape[1]).transpose(1, 2)   # (B, heads, 1, d)
        g_map = g_out.float() @ v.transpose(-2, -1)
        if isinstance(block.get("kernel"), LinformerKernel):   # N x k map -> A F, the N x N operator on v
            a = a @ block["kernel"].proj_v.weight.detach().float()
        maps.append(a)
        grads.append(g_map)
    R = relevance_from_maps(maps, grads, rows_only=rows_only, key_to_query=key_to_query, subsampling=subsampling)
    if pools:
        rel = (pool_bar[:, None] @ R)[:, 0]
    else:
        rel = R[:, 0, 1:] if has_cls else R.mean(1)
    if grid is None:  # XCiT's stems do not record a grid: square
        side = int(round(rel.shape[-1] ** 0.5))
        grid = (side, side)
    h, w = grid
    return Relevance(rel.reshape(-1, h, w).float().cpu(), targets.detach().cpu(), logits.detach().float().cpu(),
                     (h, w), what, notes)
