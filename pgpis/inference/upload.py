"""Uploading a `pgpis export` folder to a Hugging Face Hub model repository (`pgpis push`).

``HfApi().create_repo`` (kept when it exists) then one ``upload_folder`` commit of the export's files. A
folder that is not an export, or that holds a pickle-based file (``.ckpt``, ``.pt``, ``.bin``, ...), is
refused before anything is sent: what pgpis shares loads without unpickling. See docs/inference.md,
"Share a model".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from pgpis.errors import DataFormatError, MissingWeightsError, PgpisError, Problem
from pgpis.inference.export import PIPELINE_CONFIG
from pgpis.inference.hub import HUB_ID_PATTERN, REPO_PLACEHOLDER, HubIdError, offline

#: file types an export never holds and an upload refuses (they unpickle, so loading them could run code)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")


class HubUploadError(PgpisError, RuntimeError):
    """An upload that could not be done (offline, no token, the hub refused); says why and what to do."""


def _check_uploadable(folder: Path) -> list[Path]:
    """The export's files, after refusing a folder that is not an export or holds files that unpickle."""
    if not (folder / PIPELINE_CONFIG).is_file():
        raise MissingWeightsError("pgpis export folder", folder,
                                  f"expected {PIPELINE_CONFIG} there: upload a folder written by `pgpis export CKPT OUT_DIR`")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.relative_to(folder).parts[0].startswith("."))
    pickles = [p for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise DataFormatError([Problem(str(p), "a pickle-based file in the export folder (loading it could run "
                                       "code, and pgpis never loads it)", "remove it: an export is safetensors + "
                                       "JSON only") for p in pickles])
    return files


def fill_repo_id(folder: Path, repo_id: str) -> None:
    """Write `repo_id` into the model card's loading lines (where export left :data:`REPO_PLACEHOLDER`)."""
    card = folder / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        if REPO_PLACEHOLDER in text:
            card.write_text(text.replace(REPO_PLACEHOLDER, repo_id), encoding="utf-8")


def push_export(folder: Union[str, os.PathLike], repo_id: str, *, revision: Optional[str] = None,
                private: Optional[bool] = None, token: Optional[str] = None,
                commit_message: Optional[str] = None) -> str:
    """Upload a `pgpis export` folder to the model repository `repo_id` (created if needed); the commit's URL.

    `revision` is a branch (created from main when missing); `token` defaults to the logged-in one
    (`hf auth login` / ``HF_TOKEN``). The card's repository placeholder is filled in with `repo_id` first.
    """
    folder = Path(folder)
    if not HUB_ID_PATTERN.match(str(repo_id)):
        raise HubIdError(f"push: {repo_id!r} is not a hub id; give ORG/NAME (e.g. your-name/fpdm-deepfashion)")
    files = _check_uploadable(folder)
    if offline():
        raise HubUploadError(f"push {folder} -> {repo_id}: HF_HUB_OFFLINE is set, so nothing can be uploaded; "
                             "unset it (and log in with `hf auth login`) on a machine with internet")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    fill_repo_id(folder, repo_id)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision,
                                 allow_patterns=[p.relative_to(folder).as_posix() for p in files],
                                 commit_message=commit_message or f"Upload pgpis export {folder.name}")
    except (HfHubHTTPError, LocalTokenNotFoundError) as err:
        raise HubUploadError(f"push {folder} -> {repo_id}: the hub refused ({err}). Log in with `hf auth login` "
                             "(or pass --token / set HF_TOKEN) with write access to that namespace") from None
    return str(getattr(info, "commit_url", info))


__all__ = ["push_export", "fill_repo_id", "HubUploadError", "PICKLE_SUFFIXES"]
