"""WPose (UniHuman's in-the-wild test set, TruePose Table 1): reader, synthetic copy, keypoints, protocols.

docs/wpose.md has the commands. Light to import (the registry imports every dataset package): the hooks
and public classes below are resolved lazily from their submodules.

- :mod:`~pgpis.data.wpose.layout`: the on-disk layout (``image_urls.txt``, ``bbox.txt``, ``test_pairs.txt``,
  ``test_data.pkl`` through a restricted unpickler, ``images/``, ``parsing/``, ``keypoints/``)
- :mod:`~pgpis.data.wpose.parsing`: the CIHP -> LIP label table
- :mod:`~pgpis.data.wpose.fit`: resize-to-fit and pad, for model inputs and report sizes alike
- :mod:`~pgpis.data.wpose.synthetic`: people over clutter in the real layout (``pgpis data synth``)
- :mod:`~pgpis.data.wpose.prepare`: keypoints by a pose estimator (``pgpis data prepare``)
- :mod:`~pgpis.data.wpose.download`: fetch and preprocess as UniHuman does (``pgpis data download-wpose``)
- :mod:`~pgpis.data.wpose.datamodule`: the test-only DataModule
- :mod:`~pgpis.data.wpose.protocols` / :mod:`~pgpis.data.wpose.scoring`: ``wpose-512x352``, ``wpose-256x176``
"""
from __future__ import annotations

from pgpis.lazy_exports import lazy_getattr

_EXPORTS = {
    # the dataset contract (pgpis.data.contract), as pgpis.data.registry finds it
    "WPosePackage": "package",
    # hooks of pgpis.data.registry
    "add_cli_arguments": "hooks", "run_synth": "hooks", "run_check": "hooks", "run_prepare": "hooks", "add_tools": "hooks",
    "add_evaluate_arguments": "hooks", "run_evaluate": "hooks",
    "PROTOCOLS": "protocols", "DEFAULT_PROTOCOL": "protocols",
    # public classes and functions
    "WPoseIndex": "layout", "read_wpose_index": "layout",
    "WPoseDataModule": "datamodule", "WPoseDataset": "datamodule",
    "write_synthetic_wpose": "synthetic", "prepare_keypoints": "prepare",
    "CIHP_TO_LIP": "parsing", "cihp_to_lip": "parsing",
    "Fit": "fit", "fit_image": "fit", "fit_labels": "fit", "PAD_RGB": "fit",
    "evaluate_wpose": "scoring", "WPoseEvaluationResult": "scoring",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
