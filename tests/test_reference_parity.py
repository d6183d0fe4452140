"""Reference parity for every family: weights copied across, logits compared at <= 1e-5.

Each reference here is independent of the library's code path: either timm's own model (ViT,
MLP-Mixer) loaded with the same weights, or a test-local forward written from the papers' formulas
(FNet, CvT, the F-SNE code modes, the efficient attention kernels). References run in float64 from
the model's parameters; the model runs as shipped (float32), so a difference of ~1e-6 is rounding
and anything structural (a swapped q/k, a dropped residual, a conv on the wrong tensor, a missing
scale) moves the logits by orders of magnitude more than the 1e-5 tolerance.

Parameters are re-drawn from N(0, 0.3^2) (biases, norms, BN statistics included) so that no zero
initialisation hides a term, and q / k weights are asymmetric by construction.
"""
from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import MlpMixer
from timm.models.vision_transformer import VisionTransformer

import vitviz  # noqa: F401  (registers the variants)
from vitviz.layers.qkv_embedding import FullySharedQKV, PartiallySharedQKV, SeparateNonLinearQKV
from vitviz.layers.token_attention import TokenAttention
from tiny import tiny_kwargs

TOL = 1e-5
GEN_SEED = 1234


def randomise_(model: torch.nn.Module, std: float = 0.3, seed: int = GEN_SEED) -> torch.nn.Module:
    """Re-draw every parameter and BatchNorm statistic so that no term is silently zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
            if name.endswith("temperature"):
                p.abs_().add_(0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


def images(b: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def d(t: torch.Tensor) -> torch.Tensor:
    return t.detach().double()


# ---------------------------------------------------------------- float64 reference primitives

def layer_norm(x, norm):
    return F.layer_norm(x, x.shape[-1:], d(norm.weight), d(norm.bias), norm.eps)


def linear(x, lin):
    out = x @ d(lin.weight).t()
    return out + d(lin.bias) if lin.bias is not None else out


def gelu(x):  # exact (erf) GELU, as in the papers' MLPs
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def mlp(x, m):  # timm's Mlp: fc1 -> GELU -> fc2
    return linear(gelu(linear(x, m.fc1)), m.fc2)


def patchify(x, conv):
    """Non-overlapping patch embedding as a matmul over flattened patches (ViT eq. 1)."""
    p = conv.kernel_size[0]
    B, C, H, W = x.shape
    patches = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)
    return patches @ d(conv.weight).reshape(conv.out_channels, -1).t() + d(conv.bias)


def heads(x, h):  # (B, N, C) -> (B, h, N, C / h)
    B, N, C = x.shape
    return x.reshape(B, N, h, C // h).transpose(1, 2)


def merge(x):  # (B, h, N, d) -> (B, N, h d)
    B, h, N, dh = x.shape
    return x.transpose(1, 2).reshape(B, N, h * dh)


def softmax_attention(q, k, v, scale):
    return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v


def linformer_attention(q, k, v, E, Fm, scale):
    """Wang et al. 2020: softmax(Q (E K)^T / sqrt(d)) (F V), E, F: (k, N)."""
    return softmax_attention(q, E @ k, Fm @ v, scale)


def favor_attention(q, k, v, W):
    """Choromanski et al. 2021, FAVOR+ with positive features:
    phi(x) = exp(W x - |x|^2 / 2) / sqrt(m) on x = x / d^(1/4);  out = D^-1 phi(Q) (phi(K)^T V)."""
    dh, m = q.shape[-1], W.shape[0]

    def phi(x):
        x = x / dh ** 0.25
        return torch.exp(x @ W.t() - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)
    qp, kp = phi(q), phi(k)
    return (qp @ (kp.transpose(-2, -1) @ v)) / (qp @ kp.sum(-2).unsqueeze(-1))


def razavi_pinv(a, iterations):
    """Nystromformer's iterative Moore-Penrose inverse (Razavi et al. 2014), from the paper:
    Z0 = A^T / (||A||_1 ||A||_inf);  Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype)
    norm_1 = a.abs().sum(-2).amax(-1)    # max column sum
    norm_inf = a.abs().sum(-1).amax(-1)  # max row sum
    z = a.transpose(-2, -1) / (norm_1 * norm_inf)[..., None, None]
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def segment_means(x, m):
    """Landmarks: means of m contiguous segments; segment i is tokens [floor(i n/m), floor((i+1) n/m))."""
    n = x.shape[-2]
    bounds = [(i * n) // m for i in range(m + 1)]
    return torch.stack([x[..., bounds[i]:bounds[i + 1], :].mean(-2) for i in range(m)], dim=-2)


def nystrom_attention(q, k, v, m, iterations, scale, conv_weight=None):
    """Xiong et al. 2021: softmax(Q K~^T) pinv(softmax(Q~ K~^T)) softmax(Q~ K^T) V + DWConv(V).
    The residual is a depthwise conv of V along the token axis, one kernel per head."""
    q = q * scale
    ql, kl = segment_means(q, m), segment_means(k, m)
    k1 = torch.softmax(q @ kl.transpose(-2, -1), -1)
    k2 = torch.softmax(ql @ kl.transpose(-2, -1), -1)
    k3 = torch.softmax(ql @ k.transpose(-2, -1), -1)
    out = k1 @ razavi_pinv(k2, iterations) @ k3 @ v
    if conv_weight is not None:
        out = out + token_conv(v, conv_weight)
    return out


def token_conv(v, weight):
    """Per-head 1D convolution along tokens with zero padding: out[n] = sum_j w[j] v[n + j - r]."""
    B, H, N, dh = v.shape
    w = weight.reshape(H, -1)  # (H, kernel)
    r = w.shape[1] // 2
    padded = F.pad(v, (0, 0, r, r))
    out = torch.zeros_like(v)
    for j in range(w.shape[1]):
        out = out + w[:, j].view(1, H, 1, 1) * padded[:, :, j:j + N]
    return out


def kernel_reference(kernel, q, k, v):
    """Reference output of a vitviz kernel module from its own parameters and the paper formula."""
    name = type(kernel).__name__
    scale = q.shape[-1] ** -0.5
    if name == "SoftmaxKernel":
        return softmax_attention(q, k, v, scale)
    if name == "LinformerKernel":
        return linformer_attention(q, k, v, d(kernel.proj_k.weight), d(kernel.proj_v.weight), scale)
    if name == "PerformerKernel":
        return favor_attention(q, k, v, d(kernel.projection))
    if name == "NystromKernel":
        m = min(kernel.num_landmarks, q.shape[-2], k.shape[-2])
        conv = d(kernel.res_conv.weight) if kernel.res_conv is not None and q.shape[-2] == k.shape[-2] else None
        return nystrom_attention(q, k, v, m, kernel.pinv_iterations, scale, conv)
    raise AssertionError(f"no reference for {name}")


def token_attention_reference(attn: TokenAttention, x):
    """ViT multi-head self-attention (Vaswani et al.; Dosovitskiy et al.): [q; k; v] = x W_qkv."""
    B, N, C = x.shape
    qkv = linear(x, attn.qkv)
    q, k, v = (heads(t, attn.num_heads) for t in qkv.split(C, dim=-1))
    return linear(merge(kernel_reference(attn.kernel, q, k, v)), attn.proj)


def vit_reference(model, x, attention=token_attention_reference):
    """Pre-norm ViT with class token and learned position embedding, head on the class token."""
    x = patchify(d(x), model.patch_embed.proj)
    cls = d(model.cls_token).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], 1) + d(model.pos_embed)
    for blk in model.blocks:
        x = x + attention(blk.attn, layer_norm(x, blk.norm1))
        x = x + mlp(layer_norm(x, blk.norm2), blk.mlp)
    return linear(layer_norm(x, model.norm)[:, 0], model.head)


# ---------------------------------------------------------------- ViT, every attention kind

def tiny_vit(kind, **options):
    return randomise_(timm.create_model(f"vitviz_vit_{kind}_32", num_classes=5, **tiny_kwargs("vitviz_vit_"),
                                        **options))


def timm_vit_like(model):
    blk = model.blocks[0]
    return VisionTransformer(img_size=32, patch_size=model.patch_embed.patch_size[0], embed_dim=model.embed_dim,
                             depth=len(model.blocks), num_heads=blk.attn.num_heads,
                             mlp_ratio=blk.mlp.fc1.out_features / model.embed_dim, num_classes=5).eval()


def test_vit_softmax_equals_timm_vision_transformer():
    model = tiny_vit("softmax")
    reference = timm_vit_like(model)
    reference.load_state_dict(model.state_dict(), strict=True)
    x = images()
    with torch.no_grad():
        diff = max_diff(model(x), reference(x))
    assert diff <= TOL, diff


def test_vit_linformer_with_k_equal_n_equals_timm_vision_transformer():
    """Linformer's exact setting: k = N with identity projections is softmax attention."""
    model = tiny_vit("linformer", k=65)  # 8 x 8 patches + class token
    reference = timm_vit_like(model)
    with torch.no_grad():
        for blk in model.blocks:  # the projections must be the identity for this to be exact
            blk.attn.kernel.proj_k.weight.copy_(torch.eye(65))
            blk.attn.kernel.proj_v.weight.copy_(torch.eye(65))
    state = {k: v for k, v in model.state_dict().items() if ".kernel." not in k}
    reference.load_state_dict(state, strict=True)
    x = images()
    with torch.no_grad():
        diff = max_diff(model(x), reference(x))
    assert diff <= TOL, diff


@pytest.mark.parametrize("kind, options", [
    ("softmax", {}),
    ("linformer", {"k": 16}),
    ("performer", {}),
    ("nystrom", {}),                                  # 64 landmarks over 65 tokens, 6 iterations, conv 33
    ("nystrom", {"num_landmarks": 5, "conv_kernel": 7}),
])
def test_vit_logits_equal_a_reference_forward_with_the_kernel_formula(kind, options):
    """Whole model against a float64 reference ViT whose attention is the paper formula of each kind:
    catches q/k swapped where the module calls its kernel, and Nystrom's conv applied to the wrong tensor."""
    model = tiny_vit(kind, **options)
    x = images()
    with torch.no_grad():
        diff = max_diff(model(x), vit_reference(model, x))
    assert diff <= TOL, (kind, options, diff)


@pytest.mark.parametrize("kind, options", [
    ("softmax", {}), ("linformer", {"seq_len": 12, "k": 5}), ("performer", {"num_features": 11}),
    ("nystrom", {"num_landmarks": 4, "conv_kernel": 5}),
])
def test_token_attention_module_equals_reference(kind, options):
    torch.manual_seed(0)
    attn = randomise_(TokenAttention(16, 2, kind, **options))
    x = torch.randn(3, 12, 16)
    with torch.no_grad():
        diff = max_diff(attn(x), token_attention_reference(attn, d(x)))
    assert diff <= TOL, (kind, diff)


def test_nystrom_residual_is_a_depthwise_conv_of_v_only():
    """With the Nystrom factors' output removed (v's conv alone), the kernel adds exactly DWConv(V)."""
    from vitviz.layers.attention import NystromKernel
    torch.manual_seed(0)
    kernel = randomise_(NystromKernel(8, 2, num_landmarks=4, conv_kernel=5))
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 12, 8, generator=g) for _ in range(3))
    with torch.no_grad():
        with_conv = kernel(q, k, v).double()
        conv_w = kernel.res_conv.weight.clone()
        kernel.res_conv.weight.zero_()
        without = kernel(q, k, v).double()
    residual = with_conv - without
    assert max_diff(residual, token_conv(d(v), d(conv_w))) <= TOL
    assert max_diff(residual, token_conv(d(q), d(conv_w))) > 1e-2  # it is v's conv, not q's


# ---------------------------------------------------------------- efficient kernels at exact settings

def qkv(n=24, dh=8, h=2, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, h, n, dh, generator=g) * spread for _ in range(3)]


def test_linformer_kernel_with_k_equal_n_is_softmax():
    from vitviz.layers.attention import LinformerKernel
    q, k, v = qkv()
    kernel = LinformerKernel(8, seq_len=24, k=24)
    with torch.no_grad():
        diff = max_diff(kernel(q, k, v), softmax_attention(d(q), d(k), d(v), 8 ** -0.5))
    assert diff <= TOL, diff


def test_nystrom_kernel_with_all_landmarks_is_softmax():
    from vitviz.layers.attention import NystromKernel
    q, k, v = qkv()
    # m = N landmarks (each its own segment) and a converged pseudo-inverse: S pinv(S) S = S.
    # 20 iterations converge for these softmax matrices (condition number ~1e3); in float32 more
    # iterations of an ill-conditioned matrix drift, so the exact setting is stated for this fixture.
    kernel = NystromKernel(8, 2, num_landmarks=24, pinv_iterations=20, conv_kernel=0)
    with torch.no_grad():
        diff = max_diff(kernel(q, k, v), softmax_attention(d(q), d(k), d(v), 8 ** -0.5))
    assert diff <= TOL, diff


def test_performer_kernel_equals_favor_formula_and_approaches_softmax():
    """Performer has no finite exact setting: it equals the FAVOR+ formula for its drawn features
    (1e-5) and approaches softmax as features grow (relative error <= 0.10 at m = 8192, and at least
    4x smaller than at m = 64: Monte-Carlo error ~ 1/sqrt(m))."""
    from vitviz.layers.attention import PerformerKernel
    q, k, v = qkv(spread=0.5)
    torch.manual_seed(0)
    small = PerformerKernel(8)
    with torch.no_grad():
        assert max_diff(small(q, k, v), favor_attention(d(q), d(k), d(v), d(small.projection))) <= TOL
        exact = softmax_attention(d(q), d(k), d(v), 8 ** -0.5)
        errors = {}
        for m in (64, 8192):
            torch.manual_seed(1)
            errors[m] = ((PerformerKernel(8, num_features=m)(q, k, v).double() - exact).norm() / exact.norm()).item()
    assert errors[8192] <= 0.10 and errors[8192] * 4 < errors[64], errors


# ---------------------------------------------------------------- MLP-Mixer, FNet

def test_mixer_equals_timm_mlp_mixer_and_the_mixer_formula():
    model = randomise_(timm.create_model("vitviz_mixer_32", num_classes=5, **tiny_kwargs("vitviz_mixer_32")))
    reference = MlpMixer(num_classes=5, img_size=32, patch_size=4, num_blocks=2, embed_dim=32,
                         mlp_ratio=(0.5, 4.0)).eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    x = images()

    # Tolstikhin et al. 2021: U = X + W2 GELU(W1 LN(X)^T) ^T (token mixing), Y = U + MLP(LN(U)); mean; head
    z = patchify(d(x), model.stem.proj)
    for blk in model.blocks:
        z = z + mlp(layer_norm(z, blk.norm1).transpose(1, 2), blk.mlp_tokens).transpose(1, 2)
        z = z + mlp(layer_norm(z, blk.norm2), blk.mlp_channels)
    formula = linear(layer_norm(z, model.norm).mean(1), model.head)
    with torch.no_grad():
        out = model(x)
        assert max_diff(out, reference(x)) <= TOL
        assert max_diff(out, formula) <= TOL


def test_fnet_equals_the_fourier_formula():
    """Lee-Thorp et al. 2021: X + Re(FFT_seq(FFT_hidden(LN(X)))), then the MLP; pre-norm [ours]."""
    model = randomise_(timm.create_model("vitviz_fnet_32", num_classes=5, **tiny_kwargs("vitviz_fnet_32")))
    x = images()
    z = patchify(d(x), model.patch_embed.proj) + d(model.pos_embed)
    for blk in model.blocks:
        y = layer_norm(z, blk.norm1)
        mixed = torch.fft.fft(torch.fft.fft(y, dim=-1), dim=-2).real
        # the same operator as real DFT matrices: Re(F_N Y F_C) = C_N Y C_C - S_N Y S_C
        n, c = y.shape[-2:]
        ang = lambda m: 2 * math.pi * torch.outer(torch.arange(m), torch.arange(m)).double() / m  # noqa: E731
        dft = torch.cos(ang(n)) @ y @ torch.cos(ang(c)) - torch.sin(ang(n)) @ y @ torch.sin(ang(c))
        assert max_diff(mixed, dft) < 1e-9
        z = z + mixed
        z = z + mlp(layer_norm(z, blk.norm2), blk.mlp)
    formula = linear(layer_norm(z, model.norm).mean(1), model.head)
    with torch.no_grad():
        diff = max_diff(model(x), formula)
    assert diff <= TOL, diff


# ---------------------------------------------------------------- CvT

def batch_norm(x, bn):  # eval-mode BN over channels of (B, C, H, W)
    shape = (1, -1, 1, 1)
    return (x - d(bn.running_mean).view(shape)) / torch.sqrt(d(bn.running_var).view(shape) + bn.eps) * \
        d(bn.weight).view(shape) + d(bn.bias).view(shape)


def depthwise_conv3x3(x, weight, stride):
    """Depthwise 3 x 3 conv, zero padding 1, written as 9 shifted, strided taps."""
    B, C, H, W = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    Ho, Wo = (H - 1) // stride + 1, (W - 1) // stride + 1
    out = torch.zeros(B, C, Ho, Wo, dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            tap = padded[:, :, i:i + stride * (Ho - 1) + 1:stride, j:j + stride * (Wo - 1) + 1:stride]
            out = out + weight[:, 0, i, j].view(1, C, 1, 1) * tap
    return out


def cvt_attention_reference(attn, x, grid, kv_stride, num_heads, has_cls, scale):
    """Wu et al. 2021, convolutional projection: tokens -> 2D -> depthwise 3x3 conv -> BN -> flatten
    -> Linear; Q at stride 1, K and V at `kv_stride`; the class token skips the convs; softmax attention."""
    B, N, C = x.shape
    cls, tokens = (x[:, :1], x[:, 1:]) if has_cls else (None, x)
    x2d = tokens.transpose(1, 2).reshape(B, C, *grid)

    def project(conv_bn, lin, stride):
        t = batch_norm(depthwise_conv3x3(x2d, d(conv_bn[0].weight), stride), conv_bn[1]).flatten(2).transpose(1, 2)
        if cls is not None:
            t = torch.cat([cls, t], 1)
        return heads(linear(t, lin), num_heads)
    q = project(attn.conv_q, attn.proj_q, 1)
    k = project(attn.conv_k, attn.proj_k, kv_stride)
    v = project(attn.conv_v, attn.proj_v, kv_stride)
    return linear(merge(softmax_attention(q, k, v, scale)), attn.proj)


def cvt_reference(model, x, config, scale_of, paddings):
    """Three stages: conv token embedding (Conv2d with `paddings`, + LayerNorm), class token in the last
    stage, pre-norm blocks x + Attn(LN(x)); x + MLP(LN(x)); final LN; head on the class token."""
    x = d(x)
    for i, stage in enumerate(model.stages):
        conv = stage.embed.proj
        x = F.conv2d(x, d(conv.weight), d(conv.bias), stride=config["strides"][i], padding=paddings[i])
        B, C, H, W = x.shape
        t = layer_norm(x.flatten(2).transpose(1, 2), stage.embed.norm)
        last = i == len(model.stages) - 1
        if last:
            t = torch.cat([d(stage.cls_token).expand(B, -1, -1), t], 1)
        for blk in stage.blocks:
            t = t + cvt_attention_reference(blk.attn, layer_norm(t, blk.norm1), (H, W), config["kv_strides"][i],
                                            config["heads"][i], last, scale_of(C, config["heads"][i]))
            t = t + mlp(layer_norm(t, blk.norm2), blk.mlp)
        x = t if last else t.transpose(1, 2).reshape(B, C, H, W)
    return linear(layer_norm(x, model.norm)[:, 0], model.head)


def test_cvt_32_equals_the_reference_cvt():
    from vitviz.models.cvt import CVT_32
    config = dict(CVT_32, **tiny_kwargs("vitviz_cvt_32"))
    model = randomise_(timm.create_model("vitviz_cvt_32", num_classes=5, **tiny_kwargs("vitviz_cvt_32")))
    x = images()
    with torch.no_grad():
        out = model(x)
    # the CIFAR-native config [ours]: paddings kernel // 2, logits scaled by head_dim^-0.5 (Vaswani et al.)
    diff = max_diff(out, cvt_reference(model, x, config, lambda dim, h: (dim // h) ** -0.5, paddings=(1, 1, 1)))
    assert diff <= TOL, diff


def test_cvt_13_equals_the_reference_cvt_with_the_official_scale_and_padding():
    """CvT-13 as the official code (PAPERS.md): stem padding 2 (then 1, 1) and logits scaled by the stage
    width dim^-0.5, so published weights apply."""
    from vitviz.models.cvt import CVT_13_224
    config = dict(CVT_13_224, **tiny_kwargs("vitviz_cvt_13_224"))
    model = randomise_(timm.create_model("vitviz_cvt_13_224", num_classes=5, **tiny_kwargs("vitviz_cvt_13_224")))
    x = images(size=config["img_size"])
    with torch.no_grad():
        out = model(x)
    diff = max_diff(out, cvt_reference(model, x, config, lambda dim, h: dim ** -0.5, paddings=(2, 1, 1)))
    assert diff <= TOL, diff


# ---------------------------------------------------------------- Q/K/V embeddings (paper 1)

def test_fsne_code_modes_equal_their_formulas():
    """concat: W1 [x; c_t] + b1;  add: W1 (x + c_t) + b1;  gate: ReLU(W1 x + b1) * sigmoid(Wg c_t + bg);
    then ReLU (concat/add), W2 h + b2 per pathway, concatenated [q; k; v]."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 16, generator=g)
    xd = d(x)
    for mode in ("concat", "add", "gate"):
        emb = randomise_(FullySharedQKV(16, hidden=24, code_mode=mode))
        w1, b1, w2, b2 = d(emb.fc1.weight), d(emb.fc1.bias), d(emb.fc2.weight), d(emb.fc2.bias)
        outs = []
        for t in range(3):
            c = d(emb.codes[t])
            if mode == "concat":
                h = torch.relu(torch.cat([xd, c.expand(2, 5, -1)], -1) @ w1.t() + b1)
            elif mode == "add":
                h = torch.relu((xd + c) @ w1.t() + b1)
            else:
                gate = torch.sigmoid(c @ d(emb.gate.weight).t() + d(emb.gate.bias))
                h = torch.relu(xd @ w1.t() + b1) * gate
            outs.append(h @ w2.t() + b2)
        with torch.no_grad():
            diff = max_diff(emb(x), torch.cat(outs, -1))
        assert diff <= TOL, (mode, diff)
        # the three pathways really differ (the codes select them)
        assert max_diff(outs[0], outs[1]) > 1e-3


def test_sne_and_psne_equal_their_formulas_from_raw_parameters():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 16, generator=g)
    xd = d(x)
    sne = randomise_(SeparateNonLinearQKV(16, hidden=8))
    w1, b1 = d(sne.fc1.weight), d(sne.fc1.bias)
    expected = torch.cat([torch.relu(xd @ w1[8 * t:8 * (t + 1)].t() + b1[8 * t:8 * (t + 1)]) @ d(sne.fc2.weight[t]).t()
                          + d(sne.fc2.bias[t]) for t in range(3)], -1)
    with torch.no_grad():
        assert max_diff(sne(x), expected) <= TOL
    psne = randomise_(PartiallySharedQKV(16, hidden=12))
    shared = torch.relu(xd @ d(psne.shared.weight).t() + d(psne.shared.bias))
    expected = torch.cat([shared @ d(psne.fc2.weight[t]).t() + d(psne.fc2.bias[t]) for t in range(3)], -1)
    with torch.no_grad():
        assert max_diff(psne(x), expected) <= TOL


# ---------------------------------------------------------------- the maps the kernels show

def conv_band_matrix(weight, n):
    """The per-head N x N matrix of the token-axis depthwise conv: C[h, i, j] = w[h, j - i + r]."""
    w = weight.reshape(weight.shape[0], -1)
    r = w.shape[1] // 2
    band = torch.zeros(w.shape[0], n, n, dtype=w.dtype)
    for i in range(n):
        for j in range(max(0, i - r), min(n, i + r + 1)):
            band[:, i, j] = w[:, j - i + r]
    return band


def reference_map(kernel, q, k):
    """The map each kind stands for, from the papers (float64): softmax; FAVOR+'s normalised
    phi(Q) phi(K)^T; Nystrom's three factors plus the residual conv as a banded matrix;
    Linformer's N x k softmax over projected keys."""
    name, scale = type(kernel).__name__, q.shape[-1] ** -0.5
    if name == "SoftmaxKernel":
        return torch.softmax(q @ k.transpose(-2, -1) * scale, -1)
    if name == "LinformerKernel":
        return torch.softmax(q @ (d(kernel.proj_k.weight) @ k).transpose(-2, -1) * scale, -1)
    if name == "PerformerKernel":
        eye = torch.eye(k.shape[-2], dtype=k.dtype)
        return favor_attention(q, k, eye.expand(*k.shape[:-1], -1), d(kernel.projection))
    eye = torch.eye(k.shape[-2], dtype=k.dtype).expand(*k.shape[:-1], -1)
    m = min(kernel.num_landmarks, q.shape[-2], k.shape[-2])
    operator = nystrom_attention(q, k, eye, m, kernel.pinv_iterations, scale)
    if kernel.res_conv is None:
        return operator
    return operator + conv_band_matrix(d(kernel.res_conv.weight), q.shape[-2])


@pytest.mark.parametrize("kind, options", [
    ("softmax", {}), ("linformer", {"seq_len": 12, "k": 5}), ("performer", {"num_features": 11}),
    ("nystrom", {"num_landmarks": 4, "conv_kernel": 5}),
])
def test_recorded_map_is_the_paper_map_and_the_operator_the_kernel_applies(kind, options):
    from vitviz.layers.attention import make_kernel
    torch.manual_seed(0)
    kernel = randomise_(make_kernel(kind, 8, 2, **options))
    q, k, v = qkv(n=12)
    recorded = []
    kernel.need_map = True
    kernel.attention_map.register_forward_hook(lambda m, a, out: recorded.append(out))
    with torch.no_grad():
        out = kernel(q, k, v)
    assert len(recorded) == 1
    expected = reference_map(kernel, d(q), d(k))
    assert max_diff(recorded[0], expected) <= TOL, kind
    with torch.no_grad():  # the same map through the public implied_attention(q, k)
        assert max_diff(kernel.implied_attention(q, k), expected) <= TOL, kind
    applied_to = d(kernel.proj_v.weight) @ d(v) if kind == "linformer" else d(v)
    assert max_diff(out, expected @ applied_to) <= TOL, kind


@pytest.mark.parametrize("kind, options", [
    ("softmax", {}), ("linformer", {"seq_len": 12, "k": 5}), ("nystrom", {"num_landmarks": 4, "conv_kernel": 0}),
])
def test_an_explicit_logit_scale_is_used(kind, options):
    """CvT-13 scales logits by dim^-0.5: every kernel must honour an explicit `scale`."""
    from vitviz.layers.attention import make_kernel
    torch.manual_seed(0)
    kernel = randomise_(make_kernel(kind, 8, 2, scale=0.9, **options))
    q, k, v = qkv(n=12)
    with torch.no_grad():
        out = kernel(q, k, v)
    # the reference at head_dim^-0.5, fed q rescaled so that its logits carry the scale 0.9 instead
    reference = kernel_reference(kernel, d(q) * 0.9 / 8 ** -0.5, d(k), d(v))
    assert max_diff(out, reference) <= TOL, kind


def test_iterative_pinv_follows_the_razavi_iteration_per_matrix():
    """Each matrix of a batch gets its own initial scaling ||A||_1 ||A||_inf (not the batch's largest)."""
    from vitviz.layers.attention import iterative_pinv
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, 6, generator=g) + torch.eye(6)
    batch = torch.stack([a, 10 * a.t()])  # different scales, non-stochastic rows
    for iterations in (2, 4):
        assert max_diff(iterative_pinv(batch, iterations), razavi_pinv(d(batch), iterations)) <= 1e-4
    torch.testing.assert_close(iterative_pinv(batch, 30).double() @ d(batch), torch.eye(6).double().expand(2, 6, 6),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind, options", [("softmax", {}), ("linformer", {"seq_len": 12, "k": 12})])
def test_attention_dropout_acts_in_training_only(kind, options):
    from vitviz.layers.attention import make_kernel
    kernel = make_kernel(kind, 8, 2, attn_drop=0.5, **options)
    q, k, v = qkv(n=12)
    for need_map in (False, True):
        kernel.need_map = need_map
        with torch.no_grad():
            exact = kernel.eval()(q, k, v)
            torch.manual_seed(0)
            dropped = kernel.train()(q, k, v)
        assert max_diff(exact, softmax_attention(d(q), d(k), d(v), 8 ** -0.5)) <= TOL
        assert max_diff(dropped, exact) > 1e-2, (kind, need_map)
