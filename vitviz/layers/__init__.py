"""Small reusable modules: Q/K/V embeddings, attention kernels, RoPE, conv stems, Fourier mixing."""
from .attention import (ATTENTION_KINDS, AttentionKernel, LinformerKernel, NystromKernel, PerformerKernel,
                        SoftmaxKernel, make_kernel)
from .fourier import FourierMixing
from .patch_embed import ConvStemPatchEmbed, XcitStem4, conv_stem
from .qkv_embedding import (FullySharedQKV, GroupedLinear, PartiallySharedQKV, SeparateNonLinearQKV,
                            make_qkv_embedding)
from .rope import RotaryEmbedding, rope_angles
from .token_attention import TokenAttention
