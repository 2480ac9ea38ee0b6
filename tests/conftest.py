"""Shared test set-up: offline hub, and small synthetic DeepFashion copies in both layouts."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # without it every hub call retries for ~20 s before failing

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SYNTHETIC_FIXTURE_ARGS = dict(seed=0, identities=12, poses=4, workers=1)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small synthetic DeepFashion (12 identities x 4 poses, seed 0) in the CFLD layout, with parsing maps."""
    from pgpis.data.deepfashion.synthetic import write_synthetic_deepfashion

    root = tmp_path_factory.mktemp("synthetic_cfld")
    write_synthetic_deepfashion(root, layout="cfld", **SYNTHETIC_FIXTURE_ARGS)
    return root


@pytest.fixture(scope="session")
def synthetic_root_pcdms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same data as `synthetic_root`, written in the PCDMs layout."""
    from pgpis.data.deepfashion.synthetic import write_synthetic_deepfashion

    root = tmp_path_factory.mktemp("synthetic_pcdms")
    write_synthetic_deepfashion(root, layout="pcdms", **SYNTHETIC_FIXTURE_ARGS)
    return root


@pytest.fixture(scope="session")
def synthetic_phoenix_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small synthetic Phoenix14T (2 signers; 4 train, 1 dev, 2 test videos of 6-9 frames, seed 0), keypoints in
    all three containers: keypoints/phoenix-2014t.keypoints.{pkl,npz} and per-split tensor pickles phoenix-2014t.<split>."""
    from pgpis.data.phoenix.synthetic import write_synthetic_phoenix

    root = tmp_path_factory.mktemp("synthetic_phoenix")
    write_synthetic_phoenix(root, seed=0, signers=2, videos={"train": 4, "dev": 1, "test": 2}, frames=(6, 9),
                            keypoint_formats=("pickle", "tensor-pickle", "npz"))
    return root


@pytest.fixture(scope="session")
def tiny_ldm_checkpoints(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> dict:
    """FPDM and TruePose checkpoints from `pgpis fit` of the shipped tiny configs (experiments/tiny/{ipf,fpdm,
    truepose}.yaml, 2 steps) on `synthetic_root`: {"fpdm", "truepose", "fusion_model", "ipf"} paths (inference API,
    notebook and app tests), so a config change that breaks inference fails them."""
    from inference_fixtures import train_shipped_checkpoints

    return train_shipped_checkpoints(tmp_path_factory.mktemp("tiny_ldm"), synthetic_root)
