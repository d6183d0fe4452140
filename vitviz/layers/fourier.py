"""FNet token mixing (Lee-Thorp et al. 2021): Re(FFT_seq(FFT_hidden(x))), no parameters.

With the DFT matrix F_n = C_n - i S_n (C_n[j, k] = cos(2 pi j k / n), S_n[j, k] = sin(2 pi j k / n),
both symmetric), FFT_seq(FFT_hidden(X)) = F_N X F_C, so the mixing is the real linear operator

    Re(F_N X F_C) = C_N X C_C - S_N X S_C        (X: N tokens x C channels)

`dft_parts` gives (C_n, S_n); `fourier_mixing` applies the two-term form.
"""
import torch
from torch import nn


class FourierMixing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(x.float(), dim=(-2, -1)).real.to(x.dtype)


def dft_parts(n: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(C_n, S_n): the cosine and sine matrices of the n-point DFT, F_n = C_n - i S_n."""
    idx = torch.arange(n, dtype=torch.float64)
    angle = 2 * torch.pi * torch.remainder(idx[:, None] * idx[None], n) / n  # exact phase, no large products
    return torch.cos(angle).to(dtype), torch.sin(angle).to(dtype)


def fourier_mixing(x: torch.Tensor) -> torch.Tensor:
    """C_N x C_C - S_N x S_C for x (..., N, C): the same as `FourierMixing` (in x's float dtype)."""
    c_n, s_n = dft_parts(x.shape[-2], x.dtype)
    c_c, s_c = dft_parts(x.shape[-1], x.dtype)
    return c_n @ x @ c_c - s_n @ x @ s_c
