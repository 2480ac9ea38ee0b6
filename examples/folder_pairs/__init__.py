"""A fourth dataset outside pgpis: a plain folder of a user's own photos, keypoint files and a pairs CSV.

    ROOT/images/<name>.png|jpg        the photos (any size: the DataModule stretches them, no crop)
    ROOT/keypoints/<image stem>.txt   `pgpis pose extract ROOT/images --out ROOT/keypoints --format pcdms`
    ROOT/pairs.csv                    header "source,target", one pair of image file names per line

Used by class path only (PYTHONPATH including examples/): ``--dataset folder_pairs.FolderPairs`` for
`pgpis data check` / `pgpis evaluate`, ``data.class_path: folder_pairs.FolderPairsDataModule`` in a YAML.
It imports only pgpis's public API; docs/extending.md walks through it.
"""
from folder_pairs.datamodule import FolderPairsDataModule
from folder_pairs.layout import FolderIndex, read_folder
from folder_pairs.package import FolderPairs

__all__ = ["FolderIndex", "FolderPairs", "FolderPairsDataModule", "read_folder"]
