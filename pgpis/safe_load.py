"""Reading checkpoints and weight files without running code from them.

A ``.ckpt`` is a pickle: an unrestricted ``torch.load`` of a downloaded one
runs whatever callable the file names (``os.system``, ``pathlib.Path.touch``...)
before pgpis sees a single key. pgpis therefore reads every checkpoint with
``torch.load(weights_only=True)``: tensors, containers, numbers and strings,
plus the few data-only classes in :data:`SAFE_GLOBALS`. That is everything
``pgpis fit`` writes: LightningCLI stores the model and DataModule config as the
YAML-parsed dump of the run's config (plain dicts, lists, strings, numbers), and
Lightning's loop, optimiser, scheduler (``LambdaLR`` keeps ``WarmupStepDecay``'s
``__dict__``), ``ModelCheckpoint`` and EMA states are plain too. Anything else is
refused with :class:`~pgpis.errors.UnsafeCheckpointError`, which names the
offending global; one's own file can still be read with ``--trust-checkpoint``
(``trust_checkpoint=True`` in the API), and models are shared as ``pgpis export``
folders (safetensors + JSON: nothing to unpickle).

A truncated or corrupted checkpoint or safetensors file raises
:class:`~pgpis.errors.DamagedFileError` naming the file, instead of torch's or
safetensors' internal error. The Lightning side (``pgpis fit|validate|test|predict
--ckpt_path``) is :class:`pgpis.safe_cli.SafeCheckpointCLI`.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch

from pgpis.errors import DamagedFileError, MissingWeightsError, Problem, UnsafeCheckpointError

#: data-only classes admitted beyond torch's own weights-only set (tensors, dtypes, OrderedDict, builtins):
#: path objects (a config value typed ``Path``) rebuild from their string parts and run nothing else.
SAFE_GLOBALS: tuple[type, ...] = (pathlib.PurePosixPath, pathlib.PosixPath, pathlib.PureWindowsPath,
                                  pathlib.WindowsPath)

#: the command-line opt-out, for checkpoints one wrote oneself
TRUST_FLAG = "--trust-checkpoint"

TRUST_FIX = (f"only if you trust the file (one you wrote yourself, e.g. with extra objects): pass {TRUST_FLAG} to the "
             "pgpis command, or load_pipeline(..., trust_checkpoint=True) in Python. To share a model, send its "
             "`pgpis export CKPT OUT_DIR` folder (safetensors + JSON, loads without unpickling) instead of the .ckpt")

TRUST_HELP = ("read the .ckpt with full unpickling, which can run code: only for checkpoints you wrote yourself "
              "that the default weights-only read refuses")

DAMAGED_FIX = ("copy or download it again (compare its size and checksum with the original), or use another "
               "checkpoint of the run (`pgpis fit` keeps checkpoints/last.ckpt and the top-k ones)")

_WEIGHTS_ONLY_FAILED = "Weights only load failed"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


@contextlib.contextmanager
def safe_globals() -> Iterator[None]:
    """``torch.serialization.safe_globals`` with :data:`SAFE_GLOBALS`: the allowlist of every weights-only load."""
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        yield


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else ""
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _refusal(path: Path, err: pickle.UnpicklingError) -> UnsafeCheckpointError:
    """What the weights-only unpickler refused, in one sentence."""
    found = _GLOBAL.search(str(err))
    if found:
        return UnsafeCheckpointError(Problem(str(path), (
            f"refused to load: the file names the Python callable/class `{found.group(1)}`, which unpickling would "
            "call (a checkpoint from `pgpis fit` holds only tensors, numbers, strings and containers); nothing from "
            "it was run"), TRUST_FIX))
    detail = _unsupported(err)
    return UnsafeCheckpointError(Problem(str(path), (
        f"refused to load: not a plain-data checkpoint ({detail}: a raw pickle, or a damaged file); nothing from it "
        "was run"), f"{TRUST_FIX}. If it is a damaged `pgpis fit` checkpoint: {DAMAGED_FIX}"))


def _unsupported(err: BaseException) -> str:
    """The weights-only unpickler's own reason (``Unsupported operand 149``), else the error's first line."""
    return next((ln.strip() for ln in str(err).splitlines() if "Unsupported" in ln), _first_line(err))


def _damaged(path: Path, err: BaseException, what: str = "PyTorch checkpoint",
             reason: Optional[str] = None) -> DamagedFileError:
    size = path.stat().st_size if path.is_file() else 0
    reason = "the file is empty" if size == 0 else (reason or _first_line(err))
    return DamagedFileError(Problem(str(path), f"truncated or corrupted {what} ({reason}; {size} bytes)", DAMAGED_FIX))


def _first_damaged_record(path: Path) -> Optional[str]:
    """The first record of a ``torch.save`` zip whose CRC-32 does not match, else None.

    Why: a flipped byte in the tensor data loads silently as wrong weights; checking costs ~1 s per GiB
    (0.9-1.3 s measured on the 2-core VM, about what ``torch.load`` itself takes)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.CRC == 0 and info.file_size > 0:
                    continue  # written with torch.serialization.set_crc32_options(False): nothing to check against
                try:
                    with zf.open(info) as f:
                        while f.read(1 << 24):
                            pass
                except zipfile.BadZipFile:
                    return info.filename
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"the zip archive ({_first_line(err)})"
    return None


def _starts_like_pickle(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(1) == b"\x80"  # PROTO opcode: every pickle of protocol >= 2 (torch's legacy format too)


def _torch_load(path: Path, weights_only: bool, map_location: Any, mmap: bool) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only, mmap=mmap)
    except RuntimeError as err:
        if mmap and "mmap can only be used" in str(err):  # a legacy (non-zip) file: read it whole
            return torch.load(path, map_location=map_location, weights_only=weights_only)
        raise


def load_checkpoint(path: Union[str, os.PathLike], *, trust: bool = False, map_location: Any = "cpu",
                    mmap: bool = False, verify: bool = True) -> Any:
    """``torch.load`` of a checkpoint: weights-only (:data:`SAFE_GLOBALS`) unless `trust`, with named errors.

    Raises :class:`UnsafeCheckpointError` when the file names anything beyond plain data (nothing in it runs),
    :class:`DamagedFileError` when it is truncated or corrupted, :class:`MissingWeightsError` when it is absent.
    `mmap` maps the tensors instead of reading them; `verify` first checks every record's CRC-32 (a flipped byte
    in the weights otherwise loads silently).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError("checkpoint", path, "give the .ckpt written by `pgpis fit` (checkpoints/last.ckpt)")
    bad = _first_damaged_record(path) if verify and zipfile.is_zipfile(path) else None
    if bad is not None:
        raise DamagedFileError(Problem(str(path), f"corrupted PyTorch checkpoint ({bad} fails its CRC-32 check; "
                                       f"{path.stat().st_size} bytes)", DAMAGED_FIX))
    try:
        with safe_globals(), warnings.catch_warnings():
            # a raw pickle's protocol-4 notice would precede the refusal below and only repeat it
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return _torch_load(path, not trust, map_location, mmap)
    except pickle.UnpicklingError as err:
        if trust or _WEIGHTS_ONLY_FAILED not in str(err):
            raise _damaged(path, err) from None
        if zipfile.is_zipfile(path) and not _GLOBAL.search(str(err)):  # torch.save never writes such opcodes
            raise _damaged(path, err, reason=_unsupported(err)) from None
        if not zipfile.is_zipfile(path) and not _starts_like_pickle(path):
            raise _damaged(path, err, reason="neither a torch.save zip nor a pickle") from None
        raise _refusal(path, err) from None
    except MemoryError:
        raise
    except Exception as err:  # zip reader, EOF, decode errors of a cut or overwritten file
        raise _damaged(path, err) from None


def load_safetensors(path: Union[str, os.PathLike], *, what: str = "safetensors weights",
                     fix: str = "re-run `pgpis export CKPT OUT_DIR` (or copy the folder again)",
                     device: str = "cpu") -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` with named errors for a missing, truncated or corrupted file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(what, path, fix)
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        size = path.stat().st_size
        raise DamagedFileError(Problem(str(path), f"truncated or corrupted {what} ({_first_line(err, 200)}; "
                                       f"{size} bytes)", fix)) from None


def raise_if_damaged_safetensors(folder: Union[str, os.PathLike], subfolder: Optional[str] = None, *,
                                 fix: str = "download or copy that file again") -> None:
    """Raise :class:`DamagedFileError` for the first ``*.safetensors`` in a local model folder whose header does not
    parse or does not cover the file (a truncated download); nothing for hub ids or intact files.

    Why: diffusers reports a truncated weights file as "not found", transformers as a bare SafetensorError;
    reading the headers only costs a few KB per file."""
    from safetensors import SafetensorError, safe_open

    base = Path(folder) / (subfolder or "")
    if not base.is_dir():
        return
    for path in sorted(base.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError, ValueError) as err:
            what = f"truncated or corrupted safetensors file ({_first_line(err, 200)}; {path.stat().st_size} bytes)"
            raise DamagedFileError(Problem(str(path), what, fix)) from None


__all__ = ["SAFE_GLOBALS", "TRUST_FLAG", "TRUST_HELP", "load_checkpoint", "load_safetensors",
           "raise_if_damaged_safetensors", "safe_globals"]
