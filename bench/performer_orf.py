"""Performer FAVOR+ output error against exact softmax (float64) as features grow, with and without the QR
sign correction of the orthogonal random features (issue 11). Not a test; prints a table.

    python bench/performer_orf.py [--scale 0.5] [--head-dim 32] [--heads 4] [--draws 3] [--features 64,1024,16384]

q, k, v ~ scale * N(0, 1), one image, 64 tokens. Per feature count: the mean relative output error over
`draws` feature draws, the error of the mean output over the draws (variance shrinks with draws, a bias
does not) and the float32 kernel against a float64 FAVOR+ with the same features (implementation precision).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vitviz.layers.attention import PerformerKernel, orthogonal_random_features  # noqa: E402


def unsigned_orf(num_features: int, head_dim: int, generator=None) -> torch.Tensor:
    """The features before the fix: LAPACK's Q without multiplying its columns by sign(diag R)."""
    blocks, remaining = [], num_features
    while remaining > 0:
        q, _ = torch.linalg.qr(torch.randn(head_dim, head_dim, generator=generator))
        blocks.append(q.t()[:remaining])
        remaining -= head_dim
    return torch.cat(blocks) * torch.randn(num_features, head_dim, generator=generator).norm(dim=1, keepdim=True)


def favor_float64(q, k, v, w):
    d = q.shape[-1]

    def phi(x):
        x = x.double() * d ** -0.25
        return torch.exp(x @ w.double().t() - (x ** 2).sum(-1, keepdim=True) / 2)
    a = phi(q) @ phi(k).transpose(-2, -1)
    return (a / a.sum(-1, keepdim=True)) @ v.double()


def rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--features", default="64,1024,16384")
    args = parser.parse_args()
    d, g = args.head_dim, torch.Generator().manual_seed(0)
    q, k, v = [torch.randn(1, args.heads, 64, d, generator=g) * args.scale for _ in range(3)]
    exact = ((q.double() * d ** -0.5) @ k.double().transpose(-2, -1)).softmax(-1) @ v.double()
    print(f"q, k, v ~ {args.scale} N(0, 1); 1 x {args.heads} heads x 64 tokens x {d}; {args.draws} draws")
    print("ORF                  features  mean error  error of mean  float32 vs float64 FAVOR+")
    for label, draw in (("before (no sign fix)", unsigned_orf), ("after (sign fix)", orthogonal_random_features)):
        for m in (int(f) for f in args.features.split(",")):
            errors, outputs, precision = [], [], []
            for seed in range(args.draws):
                w = draw(m, d, torch.Generator().manual_seed(seed))
                kernel = PerformerKernel(d, num_features=m)
                kernel.projection.copy_(w)
                with torch.no_grad():
                    out = kernel(q, k, v)
                errors.append(rel(out, exact))
                outputs.append(out.double())
                precision.append(rel(out, favor_float64(q, k, v, w)))
            of_mean = rel(torch.stack(outputs).mean(0), exact)
            print(f"{label:20s} {m:8d}  {sum(errors) / len(errors):10.4f}  {of_mean:13.4f}  {max(precision):.1e}")


if __name__ == "__main__":
    main()
