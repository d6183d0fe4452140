"""Chefer et al. (2021) gradient-weighted relevance against a hand computation on a hand-made model."""
import pytest
import timm
import torch
from torch import nn

from vitviz.inspect.relevance import chefer_relevance, relevance_from_maps, relevance_problem, stride_cells
from vitviz.layers.attention import LinformerKernel, NystromKernel, PerformerKernel, SoftmaxKernel

from tiny import tiny_kwargs

DIM, HEADS, GRID = 8, 2, (2, 2)
TOKENS = GRID[0] * GRID[1] + 1


class PatchEmbed(nn.Module):
    grid_size = GRID

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, DIM, 2, 2)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, kernel):
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.kernel = kernel

    def heads(self, x):
        B, N, _ = x.shape
        return x.reshape(B, N, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)

    def forward(self, x):
        q, k, v = self.heads(self.qkv(x))
        return x + self.kernel(q, k, v).transpose(1, 2).reshape(x.shape)


class TwoLayer(nn.Module):
    """cls + 2x2 patch tokens, two attention blocks, linear head on the class token."""
    num_prefix_tokens, global_pool = 1, "token"

    def __init__(self, kind="softmax"):
        super().__init__()
        make = {"softmax": lambda: SoftmaxKernel(DIM // HEADS),
                "performer": lambda: PerformerKernel(DIM // HEADS, num_features=16),
                "linformer": lambda: LinformerKernel(DIM // HEADS, TOKENS, k=3),
                "linformer_square": lambda: LinformerKernel(DIM // HEADS, TOKENS, k=TOKENS),  # k = N, F trained
                "nystrom": lambda: NystromKernel(DIM // HEADS, HEADS, num_landmarks=2, conv_kernel=3)}[kind]
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM))
        self.blocks = nn.ModuleList([Block(make()), Block(make())])
        self.head = nn.Linear(DIM, 3)

    def forward(self, x):
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)
        for b in self.blocks:
            t = b(t)
        return self.head(t[:, 0])


def hand_relevance(model: TwoLayer, x, target):
    """The forward written out with each block's token-to-token map A as a node of the graph (O = A V, with
    A = softmax(q k^T / sqrt(d)), Performer's normalised phi(q) phi(k)^T, Nystromformer's three-factor product plus
    its conv band, or Linformer's softmax(q (E k)^T) F),
    the maps' gradients by backpropagation, and Chefer's rule written out for two layers."""
    t = model.patch_embed(x)
    t = torch.cat([model.cls_token.expand(len(t), -1, -1), t], 1)
    maps = []
    for b in model.blocks:
        q, k, v = b.heads(b.qkv(t))
        kern = b.kernel
        if isinstance(kern, LinformerKernel):
            kp = kern.proj_k(k.transpose(-2, -1)).transpose(-2, -1)
            a = ((q * kern.scale) @ kp.transpose(-2, -1)).softmax(-1) @ kern.proj_v.weight
        elif isinstance(kern, (PerformerKernel, NystromKernel)):  # the exact operator, conv band included
            a = kern.implied_attention(q, k)
        else:
            a = ((q @ k.transpose(-2, -1)) / (DIM // HEADS) ** 0.5).softmax(-1)
        a.retain_grad()
        maps.append(a)
        t = t + (a @ v).transpose(1, 2).reshape(t.shape)
    logits = model.head(t[:, 0])
    logits[torch.arange(len(x)), target].sum().backward()
    a1, a2 = ((m.grad * m).clamp_min(0).mean(1).double() for m in maps)
    eye = torch.eye(TOKENS, dtype=torch.float64)
    r1 = eye + a1 @ eye
    r2 = r1 + a2 @ r1
    return r2[:, 0, 1:].reshape(-1, *GRID)


@pytest.mark.parametrize("kind", ["softmax", "performer", "linformer", "linformer_square", "nystrom"])
def test_two_layer_relevance_equals_hand_computation(kind):
    torch.manual_seed(0)
    model = TwoLayer(kind).eval()
    if kind == "linformer_square":  # k = N starts as the identity: move F away from it, as training does
        with torch.no_grad():
            for b in model.blocks:
                b.kernel.proj_v.weight.add_(0.3 * torch.randn(TOKENS, TOKENS))
    x = torch.randn(3, 3, 4, 4)
    target = torch.tensor([0, 2, 1])
    got = chefer_relevance(model, x, target)
    expected = hand_relevance(model, x, target)
    assert got.relevance.shape == (3, *GRID)
    assert torch.allclose(got.relevance.double(), expected, atol=1e-6, rtol=1e-4)
    assert got.relevance.abs().sum() > 0
    assert torch.equal(got.target, target)


def test_predicted_class_by_default_and_target_changes_relevance():
    torch.manual_seed(1)
    model = TwoLayer().eval()
    x = torch.randn(2, 3, 4, 4)
    default = chefer_relevance(model, x)
    assert torch.equal(default.target, default.logits.argmax(-1))
    other = chefer_relevance(model, x, (default.target + 1) % 3)
    assert not torch.allclose(default.relevance, other.relevance)


def test_rule_by_hand_numbers():
    """One head, two tokens: A_bar = (g * A)^+, R = I + A_bar1, then R + A_bar2 R, with numbers by hand."""
    a = torch.tensor([[[[0.5, 0.5], [0.2, 0.8]]]])
    g = torch.tensor([[[[2.0, -1.0], [1.0, 1.0]]]])
    # A_bar = [[1, 0], [0.2, 0.8]]; R1 = I + A_bar = [[2, 0], [0.2, 1.8]]; R2 = R1 + A_bar R1
    # A_bar R1 = [[2, 0], [0.4 + 0.16, 1.44]] = [[2, 0], [0.56, 1.44]]
    r = relevance_from_maps([a, a], [g, g])
    assert torch.allclose(r[0].float(), torch.tensor([[4.0, 0.0], [0.76, 3.24]]))
    rows = relevance_from_maps([a[:, :, :1], a[:, :, :1]], [g[:, :, :1], g[:, :, :1]], rows_only=True)
    # class-attention blocks change row 0 only: [1,0] + [1,0] = [2,0]; then [2,0] + [1,0] @ [[2,0],[0,1]] = [4,0]
    assert torch.allclose(rows[0].float(), torch.tensor([[4.0, 0.0], [0.0, 1.0]]))


def test_stride_cells_share_each_key_over_its_cell():
    u = stride_cells((4, 4), (2, 2), has_cls=True)
    assert u.shape == (5, 17)
    assert torch.allclose(u.sum(1), torch.ones(5))
    assert u[0, 0] == 1 and u[0, 1:].sum() == 0
    # key (0, 0) covers query rows 0-1, columns 0-1 -> tokens 1, 2, 5, 6 (after the class token)
    assert torch.allclose(u[1].nonzero().flatten(), torch.tensor([1, 2, 5, 6]))


@pytest.mark.parametrize("name", ["vitviz_vit_nystrom_32", "vitviz_cvt_32", "vitviz_xcit_n12_p4_32_fsne",
                                  "vitviz_xcit_n12_p4_32_linear"])
def test_every_family_gives_a_map_and_leaves_the_model_as_found(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **tiny_kwargs(name))
    model.train()
    flags = {n: getattr(m, "need_map", getattr(m, "fused_attn", None)) for n, m in model.named_modules()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    out = chefer_relevance(model, torch.randn(2, 3, 32, 32), target=3)
    assert out.relevance.shape[0] == 2 and out.relevance.ndim == 3
    assert torch.isfinite(out.relevance).all() and out.relevance.abs().sum() > 0
    assert out.what and model.training
    assert flags == {n: getattr(m, "need_map", getattr(m, "fused_attn", None)) for n, m in model.named_modules()}
    assert all(p.grad is None and torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_xcit_class_attention_matches_map_in_graph():
    """timm's ClassAttn with its explicit path: the map's own gradient (retain_grad) gives the same relevance."""
    torch.manual_seed(0)
    name = "vitviz_xcit_n12_p4_32_linear"
    model = timm.create_model(name, num_classes=10, **tiny_kwargs(name)).eval()
    x = torch.randn(2, 3, 32, 32)
    got = chefer_relevance(model, x, target=1)
    maps = []
    hooks = []
    for blk in model.cls_attn_blocks:
        blk.attn.fused_attn = False

        def keep(m, a, out):
            out.retain_grad()
            maps.append(out)
        hooks.append(blk.attn.attn_drop.register_forward_hook(keep))
    model(x)[:, 1].sum().backward()
    for h in hooks:
        h.remove()
    n = maps[0].shape[-1]
    r = torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
    for m in maps:
        a_bar = (m.grad * m).clamp_min(0).mean(1).double()       # (B, 1, N)
        r[:, :1] = r[:, :1] + a_bar @ r
    assert torch.allclose(got.relevance.flatten(1).double(), r[:, 0, 1:], atol=1e-7, rtol=1e-4)


def test_attention_free_models_are_refused_with_a_reason():
    model = timm.create_model("vitviz_fnet_32", num_classes=10, **tiny_kwargs("vitviz_fnet_32"))
    assert "no attention map" in relevance_problem(model)
    with pytest.raises(ValueError, match="no attention map"):
        chefer_relevance(model, torch.randn(1, 3, 32, 32))


def test_cvt_strided_keys_match_maps_in_graph():
    """CvT-13 (strided keys): the softmax maps' own gradients (retain_grad), key axis spread by `stride_cells`."""
    from vitviz.models.cvt import ConvAttention
    torch.manual_seed(0)
    name = "vitviz_cvt_13_224"
    model = timm.create_model(name, num_classes=10, **tiny_kwargs(name)).eval()
    x = torch.randn(2, 3, 64, 64)
    got = chefer_relevance(model, x, target=2)
    attns = [m for m in model.modules() if isinstance(m, ConvAttention)]
    last = [a for a in attns if a.grid == attns[-1].grid]
    assert last[-1].kv_grid != last[-1].grid and any("strided" in n for n in got.notes)
    maps, hooks = [], []
    for a in last:
        a.kernel.need_map = True

        def keep(m, args, out):
            out.retain_grad()
            maps.append(out)
        hooks.append(a.kernel.attention_map.register_forward_hook(keep))
    model(x)[:, 2].sum().backward()
    for h in hooks:
        h.remove()
    u = stride_cells(last[-1].grid, last[-1].kv_grid, True).double()
    n = u.shape[1]
    r = torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
    for m in maps:
        r = r + ((m.grad * m).clamp_min(0).mean(1).double() @ u) @ r
    assert torch.allclose(got.relevance.flatten(1).double(), r[:, 0, 1:], atol=1e-7, rtol=1e-4)


def test_embedded_class_attention_matches_an_explicit_map_in_graph():
    """XCiT with the Q/K/V embedding in its class attention (fused SDPA, no map): the relevance equals the one of an
    explicit forward of the same weights whose map is part of the graph."""
    import torch.nn.functional as F
    from vitviz.models.xcit import EmbeddedClassAttention
    torch.manual_seed(0)
    name = "vitviz_xcit_n12_p4_32_sne"
    model = timm.create_model(name, num_classes=10, qkv_in_class_attention=True, **tiny_kwargs(name)).eval()
    attns = [b.attn for b in model.cls_attn_blocks]
    assert all(isinstance(a, EmbeddedClassAttention) for a in attns)
    x = torch.randn(2, 3, 32, 32)
    got = chefer_relevance(model, x, target=4)
    maps = []

    def explicit(self, t):
        B, N, C = t.shape
        q, k, v = self.qkv(t).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        a = F.softmax((q[:, :, :1] * self.scale) @ k.transpose(-2, -1), dim=-1)
        a.retain_grad()
        maps.append(a)
        return self.proj((a @ v).transpose(1, 2).reshape(B, 1, C))
    for a in attns:
        a.forward = explicit.__get__(a)
    model(x)[:, 4].sum().backward()
    n = maps[0].shape[-1]
    r = torch.eye(n, dtype=torch.float64).repeat(2, 1, 1)
    for m in maps:
        r[:, :1] = r[:, :1] + (m.grad * m).clamp_min(0).mean(1).double() @ r
    assert torch.allclose(got.relevance.flatten(1).double(), r[:, 0, 1:], atol=1e-7, rtol=1e-4)
