"""Where the metric backbones' weight files come from: local files, else a verified download.

Each backbone is searched, in order, at: the explicit path (CLI flag / config
key), the environment variable, then the cache the owning library itself uses.
On a miss, online, the file is downloaded into that cache the way the owning
library does it (torch hub's ``download_url_to_file`` for the torchvision files,
clean-fid's ``check_download_inception`` for its TF-Inception), into a temporary
name first; it is verified and only then moved to its final name, so a cut or
altered transfer is never left in the cache looking valid (the libraries
themselves write clean-fid's file in place, unchecked). A file that fails the
check raises :class:`WeightVerificationError` (which file, expected vs got, what
to do). Offline (``HF_HUB_OFFLINE`` or ``PGPIS_OFFLINE`` set to 1/true/yes/on)
nothing is downloaded; a miss, offline or after a failed download, raises
:class:`pgpis.errors.MissingWeightsError` naming the file, the URL and every
place tried, so `pgpis evaluate` reports the metric as unavailable and still
computes the others. No download is attempted when an explicit path or the
environment variable names a file that does not exist: that is a mistake to report.

| backbone | file | env var | library cache | verified by |
|---|---|---|---|---|
| LPIPS AlexNet (torchvision) | alexnet-owt-7be5be79.pth | PGPIS_ALEXNET_WEIGHTS | $TORCH_HOME/hub/checkpoints/ | sha256 prefix 7be5be79 (in the published name) |
| clean-fid TF-Inception | inception-2015-12-05.pt | PGPIS_INCEPTION_WEIGHTS | /tmp/ (clean-fid's download folder) | loads as TorchScript with ``layers`` (no checksum is published) |
| torchvision Inception-v3 (legacy FID) | inception_v3_google-0cc3c7bd.pth | PGPIS_TORCHVISION_INCEPTION_WEIGHTS | $TORCH_HOME/hub/checkpoints/ | sha256 prefix 0cc3c7bd (in the published name) |

The LPIPS linear heads ship inside the `lpips` package and need nothing.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import platform
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from pgpis.errors import MissingWeightsError

_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """True when downloads are off: ``HF_HUB_OFFLINE`` (huggingface_hub's switch) or ``PGPIS_OFFLINE`` is truthy."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "PGPIS_OFFLINE"))


class WeightVerificationError(MissingWeightsError):
    """A downloaded weight file failed its check; it was deleted, not cached.

    A MissingWeightsError, so callers that report missing weights (`pgpis evaluate`)
    report this one too, with the reason.
    """

    def __init__(self, spec: "WeightSpec", expected: str, got: str):
        self.path, self.expected, self.got = spec.cache_path(), expected, got
        how = (f"Retry (a cut or altered transfer), or download it by hand, check it, and set "
               f"{spec.env}=/path/to/{spec.filename}")
        super().__init__(f"{spec.what} weights ({spec.filename})", spec.url, how)
        self.message = (f"{self.what}: the download from {spec.url} failed verification: expected {expected}, "
                        f"got {got}. It was deleted, not cached as {self.path}. {how}")

    def __str__(self) -> str:  # not MissingWeightsError's "not found (looked in ...)": the file was found, and bad
        return self.message


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable weight file, the places pgpis looks for it, and how it is fetched and checked."""

    what: str
    filename: str
    url: str
    env: str
    cache_dir: str  # "torch_hub" or an absolute folder
    sha256: str | None = None  # published sha256 or its prefix (torchvision's file names); None: none published
    fetcher: str = "torch_hub"  # "torch_hub" (torch.hub.download_url_to_file) or "clean_fid" (its own downloader)

    def cache_path(self) -> Path:
        if self.cache_dir == "torch_hub":
            import torch.hub

            return Path(torch.hub.get_dir()) / "checkpoints" / self.filename
        return Path(self.cache_dir) / self.filename

    def candidates(self, explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
        """(origin, path) pairs in search order."""
        found: list[tuple[str, Path]] = []
        if explicit:
            found.append(("explicit path", Path(explicit).expanduser()))
        if os.environ.get(self.env):
            found.append((f"${self.env}", Path(os.environ[self.env]).expanduser()))
        found.append(("library cache", self.cache_path()))
        return found

    def resolve(self, explicit: str | os.PathLike | None = None) -> Path:
        """First existing candidate; else, online, a verified download into the library cache.

        Raises MissingWeightsError (offline, a named file missing, or the download failed) listing
        the file, the URL and all places tried; WeightVerificationError when the download fails its check.
        """
        tried = self.candidates(explicit)
        for _, path in tried:
            if path.is_file():
                return path
        places = "; ".join(f"{origin}: {path}" for origin, path in tried)
        how = (f"Download {self.filename} from {self.url} on a machine with internet and either set "
               f"{self.env}=/path/to/{self.filename}, pass it explicitly, or copy it to {self.cache_path()}")
        what = f"{self.what} weights ({self.filename})"
        if len(tried) > 1:  # an explicit path or the env var names a missing file: report it, download nothing
            raise MissingWeightsError(what, places, how)
        if offline():
            raise MissingWeightsError(what, places, "Offline (HF_HUB_OFFLINE / PGPIS_OFFLINE is set), so nothing "
                                      f"was downloaded; unset it to let pgpis download the file, or: {how}")
        try:
            return self.download()
        except WeightVerificationError:
            raise
        except (OSError, http.client.HTTPException) as err:  # URLError and HTTPError are OSErrors
            raise MissingWeightsError(what, places, f"Downloading {self.url} failed ({err}). {how}") from err

    def download(self) -> Path:
        """Fetch into a temporary name beside the cache file, verify, then move it into place."""
        dst = self.cache_path()
        dst.parent.mkdir(parents=True, exist_ok=True)
        print(f"pgpis: downloading {self.what} weights {self.url} to {dst}", file=sys.stderr)
        work = Path(tempfile.mkdtemp(prefix=f".{self.filename}.", suffix=".partial", dir=dst.parent))
        try:
            tmp = self._fetch(work)
            self.verify(tmp)
            os.replace(tmp, dst)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return dst

    def _fetch(self, work: Path) -> Path:
        """Download into folder `work` with the owning library's downloader; the path written."""
        if self.fetcher == "clean_fid":
            from cleanfid import downloads_helper  # fetches downloads_helper.inception_url (== self.url)

            return Path(downloads_helper.check_download_inception(fpath=str(work)))
        import torch.hub

        tmp = work / self.filename
        try:
            torch.hub.download_url_to_file(self.url, str(tmp), hash_prefix=self.sha256, progress=True)
        except RuntimeError as err:  # torch's own hash check: 'invalid hash value (expected "...", got "...")'
            if "invalid hash value" not in str(err):
                raise
            got = re.search(r'got "([0-9a-f]+)"', str(err))
            raise WeightVerificationError(self, f"sha256 starting {self.sha256}",
                                          got.group(1) if got else str(err)) from err
        return tmp

    def verify(self, path: Path) -> None:
        """Raise WeightVerificationError unless `path` matches the published sha256 (or, with none, loads)."""
        if self.sha256:
            digest = _sha256(path)
            if not digest.startswith(self.sha256.lower()):
                raise WeightVerificationError(self, f"sha256 starting {self.sha256}", digest)
            return
        # No published checksum (clean-fid's TF-Inception): accept only what clean-fid's InceptionV3W can use.
        import torch

        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format clean-fid ships
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
            module.layers  # noqa: B018 -- InceptionV3W reads .layers
        except Exception as err:  # noqa: BLE001 -- any failure to load means the file is unusable
            first = str(err).splitlines()[0] if str(err) else ""
            raise WeightVerificationError(self, "a TorchScript archive with a 'layers' module",
                                          f"{type(err).__name__}: {first}") from err


ALEXNET = WeightSpec(
    what="LPIPS AlexNet backbone",
    filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    env="PGPIS_ALEXNET_WEIGHTS",
    cache_dir="torch_hub",
    sha256="7be5be79",  # torchvision publishes the sha256 prefix in the file name (torch.hub checks it the same way)
)
CLEAN_INCEPTION = WeightSpec(
    what="clean-fid TF-Inception (FID)",
    filename="inception-2015-12-05.pt",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    env="PGPIS_INCEPTION_WEIGHTS",
    cache_dir="./" if platform.system() == "Windows" else "/tmp",  # where clean-fid downloads it
    sha256=None,  # neither NVIDIA (stylegan2-ada-pytorch) nor clean-fid publishes one; verify() loads it instead
    fetcher="clean_fid",
)
TORCHVISION_INCEPTION = WeightSpec(
    what="torchvision Inception-v3 IMAGENET1K_V1 (legacy FID)",
    filename="inception_v3_google-0cc3c7bd.pth",
    url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    env="PGPIS_TORCHVISION_INCEPTION_WEIGHTS",
    cache_dir="torch_hub",
    sha256="0cc3c7bd",
)
RAFT_LARGE = WeightSpec(
    what="RAFT-large optical flow (temporal metrics, --flow raft)",
    filename="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
    url="https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
    env="PGPIS_RAFT_WEIGHTS",
    cache_dir="torch_hub",
    sha256="ff5fadd5",  # torchvision's published sha256 prefix
)
