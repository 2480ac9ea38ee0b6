"""A third method from outside pgpis: the source-concatenated latent-diffusion baseline (see README.md)."""
from concat_ldm.denoiser import ConcatDenoiser

__all__ = ["ConcatDenoiser"]
