"""DeepFashion In-shop: on-disk layouts (CFLD / PCDMs), DataModule, synthetic writer, CLI hooks, protocols.

Names are re-exported lazily (importing this package imports neither torch nor
the submodules), so YAML class paths and checkpoints that say
``pgpis.data.deepfashion.DeepFashionDataModule`` keep resolving, and the CLI
hooks (:mod:`pgpis.data.registry`) cost nothing until a command runs.
"""
from __future__ import annotations

from pgpis.lazy_exports import lazy_getattr

_EXPORTS = {
    # the dataset contract (pgpis.data.contract), as pgpis.data.registry finds it
    "DeepFashionPackage": "package",
    # datamodule
    "DeepFashionDataModule": "datamodule", "DeepFashionDataset": "datamodule", "DeepFashionImages": "datamodule",
    "Augmentation": "datamodule", "IMAGE_SIZE_PRESETS": "datamodule", "split_validation_identities": "datamodule",
    # the shared image helpers this module has always exported (they live in pgpis.images)
    "to_tensor": "datamodule", "resize_image": "datamodule", "load_rgb": "datamodule",
    # layout
    "DeepFashionIndex": "layout", "DeepFashionWriter": "layout", "read_deepfashion_index": "layout",
    "detect_layout": "layout", "deepfashion_name": "layout", "identity_of": "layout",
    # synthetic writer
    "write_synthetic_deepfashion": "synthetic",
    # evaluation
    "evaluate_deepfashion": "evaluate", "deepfashion_real_sets": "evaluate",
    "PROTOCOLS": "protocols", "DEFAULT_PROTOCOL": "protocols",
    # CLI hooks (pgpis.data.registry)
    "add_cli_arguments": "hooks", "run_synth": "hooks", "run_check": "hooks", "run_preview": "hooks",
    "add_evaluate_arguments": "hooks", "run_evaluate": "hooks",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
