"""Training infrastructure that is not a model or a callback: Lightning plugins (atomic checkpoint writes)."""
from pgpis.training.checkpoint_io import AtomicCheckpointIO

__all__ = ["AtomicCheckpointIO"]
