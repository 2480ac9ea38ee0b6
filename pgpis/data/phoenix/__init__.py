"""RWTH-PHOENIX-Weather 2014T: layout reader, keypoint pickles, DataModule, synthetic writer, CLI hooks, protocol.

Names are re-exported lazily (importing this package imports neither torch nor
the submodules), so YAML class paths and checkpoints that say
``pgpis.data.phoenix.PhoenixDataModule`` keep resolving, and the CLI hooks
(:mod:`pgpis.data.registry`) cost nothing until a command runs.
"""
from __future__ import annotations

from pgpis.lazy_exports import lazy_getattr

_EXPORTS = {
    # the dataset contract (pgpis.data.contract), as pgpis.data.registry finds it
    "PhoenixPackage": "package",
    # datamodule (and the layout API it has always re-exported)
    "PhoenixDataModule": "datamodule", "PhoenixDataset": "datamodule",
    "CORPUS": "layout", "CORPUS_HEADER": "layout", "FRAME_SIZE": "layout", "FRAMES_DIR": "layout",
    "KEYPOINTS_DIR": "layout", "REPORT_SIZE": "layout", "SPLITS": "layout", "PhoenixIndex": "layout",
    "PhoenixVideo": "layout", "first_frame_pairs": "layout", "keypoints_with_missing": "layout",
    "read_phoenix_index": "layout", "train_triplets": "layout",
    # keypoint files and the synthetic writer
    "UnsafePickleError": "keypoints", "read_keypoint_files": "keypoints", "convert_keypoints": "keypoints",
    "write_synthetic_phoenix": "synthetic",
    # evaluation
    "evaluate_phoenix": "evaluate", "PhoenixEvaluationResult": "evaluate",
    "PROTOCOLS": "protocols", "DEFAULT_PROTOCOL": "protocols", "PHOENIX_PROTOCOL": "protocols",
    # CLI hooks (pgpis.data.registry)
    "add_cli_arguments": "hooks", "run_synth": "hooks", "run_check": "hooks", "run_preview": "hooks", "add_tools": "hooks",
    "add_evaluate_arguments": "evaluate_hooks", "run_evaluate": "evaluate_hooks",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
