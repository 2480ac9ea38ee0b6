"""pgpis: pose-guided person image synthesis (FPDM, TruePose) on PyTorch Lightning."""

__version__ = "0.1.0"
