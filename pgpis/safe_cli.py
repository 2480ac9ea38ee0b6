"""``pgpis fit|validate|test|predict --ckpt_path``: Lightning's checkpoint loading made weights-only by default.

Kept apart from :mod:`pgpis.safe_load` so reading a checkpoint does not import Lightning's CLI.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from typing_extensions import override

from pgpis.safe_load import TRUST_FLAG, load_checkpoint, safe_globals
from pgpis.training.lightning_compat import CheckpointConfigCLI


def pop_trust_flag(args: Optional[Sequence[str]]) -> tuple[Optional[list[str]], bool]:
    """(argv without :data:`TRUST_FLAG`, whether it was there); a flag, not a config key, so a saved
    ``config.yaml`` never carries the opt-out to the next run."""
    if args is not None and not isinstance(args, (list, tuple)):
        return args, False  # a dict / Namespace of arguments: nothing to pop
    argv = list(sys.argv[1:] if args is None else args)
    if TRUST_FLAG not in argv:
        return (None if args is None else argv), False
    return [a for a in argv if a != TRUST_FLAG], True


def _first_rank() -> bool:
    """True on the process that checks CRCs: global rank 0 (``RANK``/``SLURM_PROCID``, set by torchrun, SLURM and
    Lightning's launcher). Every rank still refuses unsafe files (a cheap memory-mapped read); reading the whole
    file once more per rank for its CRCs would multiply the I/O of a resume by the number of processes."""
    return all(os.environ.get(var, "0") == "0" for var in ("RANK", "SLURM_PROCID"))


def _hparams(ckpt: Any) -> dict[str, Any]:
    return dict(ckpt.get("hyper_parameters") or {}) if isinstance(ckpt, dict) else {}


class SafeCheckpointCLI(CheckpointConfigCLI):
    """LightningCLI whose ``--ckpt_path`` is read weights-only, with pgpis's named errors.

    Lightning 2.6 passes ``Trainer.fit(..., weights_only=None)`` through to ``torch.load``, whose default
    depends on the torch version and on ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``; here the subcommands get an
    explicit ``weights_only=True`` (``False`` with ``--trust-checkpoint``, or Lightning's own
    ``--weights_only false``), the file is checked before Lightning reads it (memory-mapped, so the check
    costs no second copy of the weights), and the whole run loads under :func:`safe_globals`.
    """

    trust_checkpoint: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._ckpt_hparams: Optional[dict[str, Any]] = None
        with safe_globals():
            super().__init__(*args, **kwargs)

    @override
    def parse_arguments(self, parser, args) -> None:  # noqa: ANN001 (LightningCLI's signature)
        args, self.trust_checkpoint = pop_trust_flag(args)
        super().parse_arguments(parser, args)
        ckpt = self._ckpt_file()
        if ckpt is not None and self._weights_only(self.config[self.config.subcommand].get("weights_only")):
            # the named error before Lightning reads the file; memory-mapped, and only the config is kept
            self._ckpt_hparams = _hparams(load_checkpoint(ckpt, mmap=True, verify=_first_rank()))

    def _ckpt_file(self) -> Optional[Path]:
        """``--ckpt_path`` when it names a file (``last``/``hpc``/URLs are Lightning's, read weights-only)."""
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        return Path(str(ckpt)) if ckpt and Path(str(ckpt)).is_file() else None

    @override
    def apply_checkpoint_config(self) -> None:
        """Lightning's step (the checkpoint's model config fills in the run's) on the config
        read above, or read here with ``--trust-checkpoint``: Lightning's own read is always weights-only."""
        ckpt = self._ckpt_file()
        if ckpt is None:
            return
        hparams = self._ckpt_hparams if self._ckpt_hparams is not None else _hparams(
            load_checkpoint(ckpt, trust=not self._weights_only(self.config[self.config.subcommand].get("weights_only")),
                            mmap=True))
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write("Parsing of ckpt_path hyperparameters failed!\n")
            raise

    def _weights_only(self, given: Optional[bool]) -> bool:
        return False if self.trust_checkpoint else (True if given is None else bool(given))

    def _call(self, name: str, **kwargs: Any) -> Any:
        kwargs["weights_only"] = self._weights_only(kwargs.get("weights_only"))
        if kwargs["weights_only"]:
            self._check_what_lightning_reads()
        return getattr(self.trainer, name)(**kwargs)

    def _check_what_lightning_reads(self) -> None:
        """Lightning resolves ``--ckpt_path last|hpc`` (and SLURM's automatic ``hpc_ckpt_N.ckpt``) itself: check
        the file its ``CheckpointIO`` is then asked for, so a refused or damaged one gets the same named error."""
        io = self.trainer.strategy.checkpoint_io
        load, checked = io.load_checkpoint, self._ckpt_file()

        def checked_load(path: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(path, (str, os.PathLike)) and Path(path).is_file() and Path(path) != checked:
                load_checkpoint(path, mmap=True, verify=_first_rank())
            return load(path, *args, **kwargs)

        io.load_checkpoint = checked_load

    # LightningCLI runs `getattr(self, subcommand, trainer.<subcommand>)(**kwargs)`
    def fit(self, **kwargs: Any) -> Any:
        return self._call("fit", **kwargs)

    def validate(self, **kwargs: Any) -> Any:
        return self._call("validate", **kwargs)

    def test(self, **kwargs: Any) -> Any:
        return self._call("test", **kwargs)

    def predict(self, **kwargs: Any) -> Any:
        return self._call("predict", **kwargs)


__all__ = ["SafeCheckpointCLI", "pop_trust_flag"]
