"""Loading a `pgpis export` folder from the Hugging Face Hub by its id (uploading: :mod:`pgpis.inference.upload`).

A hub id (``ORG/NAME``) is resolved with ``huggingface_hub.snapshot_download``: online it downloads
(or updates) the repository into the Hugging Face cache, offline (``HF_HUB_OFFLINE=1``) it reads the
cached snapshot, so a model fetched once loads without a network. Only JSON, safetensors and the card
are fetched: a repository is loaded as an export folder (safetensors + JSON, nothing to unpickle), never
as a ``.ckpt``. A string that is neither an existing path nor a hub id, or a hub id that is not in the
cache offline, is a :class:`~pgpis.errors.MissingWeightsError` saying both readings and the download
command. See docs/inference.md, "Share a model".
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

from pgpis.errors import MissingWeightsError, PgpisError
from pgpis.pretrained import hf_download_command, is_local

#: what loading reads from a model repository (the export folder's files); pickles are never fetched
LOADED_FILES = ("*.json", "*.safetensors", "*.md")  # all globs: `hf download` ignores --include next to a file name
#: the model card's placeholder for the repository id, filled in by :func:`pgpis.inference.upload.push_export`
REPO_PLACEHOLDER = "<org>/<name>"
REVISION_HELP = "with a hub id as --checkpoint: the branch, tag or commit to load (default: main)"
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class HubIdError(PgpisError, ValueError):
    """A hub id where a path is expected or the reverse (a revision for a local path, a repository id that is
    not ORG/NAME)."""


def is_hub_id(name: Union[str, os.PathLike]) -> bool:
    """True for ``ORG/NAME`` written as a hub id (one slash, hub characters) that is not an existing path."""
    text = str(name)
    return not is_local(text) and bool(HUB_ID_PATTERN.match(text)) and ".." not in text and not text.endswith(".git")


def offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE``): nothing may be downloaded or uploaded."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _download_hint(repo_id: str, revision: Optional[str]) -> str:
    command = hf_download_command(repo_id, list(LOADED_FILES))
    return command + (f" --revision {revision}" if revision else "")


def resolve_checkpoint(path: Union[str, os.PathLike], revision: Optional[str] = None) -> Path:
    """The local path of a checkpoint, export folder or hub id (downloaded into / read from the HF cache).

    An existing path is returned as it is (a `revision` with it is an error); a hub id is resolved with
    ``snapshot_download`` (offline from the cache); anything else is returned unchanged, for the caller's
    own "not found" error.
    """
    if not is_hub_id(path):
        if revision is not None:
            raise HubIdError(f"revision {revision!r} is for hub ids (ORG/NAME); {path} is a local path: leave "
                             "--revision out (revision=None)")
        return Path(path)
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    repo_id = str(path)
    where = f"the local path {repo_id} (none there), or the hub id '{repo_id}'" + (f" at revision {revision}" if revision else "")
    try:
        folder = snapshot_download(repo_id, revision=revision, repo_type="model", allow_patterns=list(LOADED_FILES))
    except LocalEntryNotFoundError:
        state = "HF_HUB_OFFLINE=1: the hub was not contacted" if offline() else "the hub could not be reached"
        raise MissingWeightsError(
            "pgpis model", f"{where} in the Hugging Face cache {constants.HF_HUB_CACHE} ({state})",
            f"download it once with internet: `{_download_hint(repo_id, revision)}` (into that cache, used offline "
            "from then on), or give the path of a `pgpis export` folder or a .ckpt") from None
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as err:
        raise MissingWeightsError(
            "pgpis model", f"{where} on the Hugging Face Hub ({type(err).__name__})",
            "check the id and revision (private or gated repositories need `hf auth login` or HF_TOKEN), or give "
            "the path of a `pgpis export` folder or a .ckpt") from None
    except HfHubHTTPError as err:
        raise MissingWeightsError("pgpis model", f"{where} on the Hugging Face Hub ({err})",
                                  f"retry, or fetch it with `{_download_hint(repo_id, revision)}`") from None
    return Path(folder)


__all__ = ["HubIdError", "is_hub_id", "resolve_checkpoint", "REPO_PLACEHOLDER", "REVISION_HELP", "LOADED_FILES"]
