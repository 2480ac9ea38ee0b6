"""Checkpoint writes that a kill cannot corrupt: temp file in the same folder, fsync, ``os.replace``.

Why not Lightning's own writer: ``TorchCheckpointIO`` (Lightning 2.6) serialises the whole
checkpoint into an in-memory buffer and writes it through an fsspec transaction. For a local
path that transaction writes a temp file in the *system* temp folder (``tempfile.mkstemp()``)
and ``shutil.move``s it over the target. When ``/tmp`` is another filesystem than the run folder
(the usual case on clusters: tmpfs or node-local ``/tmp``, checkpoints on shared storage) the move
is a copy onto the target itself, so a kill during it leaves a truncated ``last.ckpt``; and
nothing is fsynced, so a node crash can leave a zero-length file behind a completed rename.
It also holds a second full copy of the checkpoint in RAM (tens of GB for a paper TruePose).

:class:`AtomicCheckpointIO` streams ``torch.save`` into ``.<name>.tmp-<random>`` next to the
target, fsyncs it, ``os.replace``s it over the target (atomic within one filesystem) and fsyncs
the folder, so the target path holds either the previous complete checkpoint or the new one.
Remote (fsspec) paths keep Lightning's writer: object stores publish an upload only when it ends.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from pgpis.atomic import TEMP_INFIX, atomic_write

PathLike = Union[str, "os.PathLike[str]"]  # what CheckpointIO is given: a path or an fsspec URL


def stale_temp_files(target: Path) -> list[Path]:
    """Temp files a killed write of `target` left behind (only this process writes `target`)."""
    return sorted(target.parent.glob(f".{target.name}{TEMP_INFIX}*"))


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save(obj, path)`` so that `path` is never seen half-written, even after a kill or a crash.

    Temp files of earlier writes of `path` that were killed midway (up to a checkpoint's size each) are
    removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temp_files(target):
        stale.unlink(missing_ok=True)
    atomic_write(target, lambda f: torch.save(obj, f), durable=True)


def is_local_path(path: PathLike) -> bool:
    """True for plain paths and ``file://`` URLs (fsspec's local filesystem)."""
    protocol = get_filesystem(path).protocol
    return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` plugin: every checkpoint (step, ``last.ckpt``, SLURM ``hpc_ckpt``) written atomically.

    Use it as ``trainer.plugins: [{class_path: pgpis.training.AtomicCheckpointIO}]`` (the shipped presets do).
    Loading is Lightning's ``TorchCheckpointIO.load_checkpoint``.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: PathLike, storage_options: Any | None = None) -> None:
        if storage_options is not None or not is_local_path(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, str(path).removeprefix("file://"))
