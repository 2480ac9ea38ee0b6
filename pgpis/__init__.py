"""pgpis: pose-guided person image synthesis (FPDM, TruePose) on PyTorch Lightning."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`pgpis.load_pipeline` (the inference API), imported lazily so `import pgpis` stays light."""
    if name == "load_pipeline":
        from pgpis.inference.pipeline import load_pipeline

        return load_pipeline
    raise AttributeError(f"module 'pgpis' has no attribute {name!r}")
