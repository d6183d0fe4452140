"""FNet token mixing (Lee-Thorp et al. 2021): Re(FFT_seq(FFT_hidden(x))), no parameters."""
import torch
from torch import nn


class FourierMixing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(x.float(), dim=(-2, -1)).real.to(x.dtype)
