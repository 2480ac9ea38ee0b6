"""The evaluation protocol type and its registry (no presets): what :mod:`pgpis.metrics.presets` and a
dataset outside pgpis register into, and what :mod:`pgpis.metrics.protocols` re-exports with the presets loaded."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from pgpis.errors import DataFormatError, Problem

FidExtractorName = Literal["clean", "torchvision"]

# metric name -> which real image set it compares the generated images against
FID_REAL_SETS: dict[str, str] = {
    "fid": "train",  # all images of the training split (the field's FID)
    "fid_test": "test_targets",  # the evaluated split's target images (FPDM's FID_test)
}


@dataclass(frozen=True)
class Protocol:
    """How generated and ground-truth images are compared.

    Generated and ground-truth images are both resized to `size` (h, w) with
    PIL bicubic and compared in [0, 1] (see :mod:`pgpis.metrics.ssim` for the
    two SSIM variants).
    """

    name: str
    size: tuple[int, int]  # (h, w) report size
    description: str
    ssim_win_size: int = 51
    ssim_gaussian_sigma: float = 1.5
    ssim_gaussian_data_range: float | None = None  # None: generated max - min, as the reference scripts
    psnr_data_range: float = 1.0
    lpips_net: str = "alex"
    fid_extractor: FidExtractorName = "clean"
    fid_real_sets: tuple[str, ...] = ("fid", "fid_test")
    resize: str = "PIL bicubic"
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["fid_real_sets"] = {m: FID_REAL_SETS[m] for m in self.fid_real_sets}
        return d


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol, *, replace: bool = False) -> Protocol:
    """Add a preset; refuses to silently redefine an existing name."""
    if protocol.name in PROTOCOLS and not replace and PROTOCOLS[protocol.name] != protocol:
        raise ValueError(f"protocol '{protocol.name}' is already registered with different settings")
    unknown = [m for m in protocol.fid_real_sets if m not in FID_REAL_SETS]
    if unknown:
        raise ValueError(f"protocol '{protocol.name}': unknown FID real sets {unknown}; known: {sorted(FID_REAL_SETS)}")
    PROTOCOLS[protocol.name] = protocol
    return protocol


def all_protocols() -> dict[str, Protocol]:
    """Every registered preset, by name."""
    return PROTOCOLS


def get_protocol(name: str | Protocol) -> Protocol:
    """Look a preset up by name; the error lists the known ones."""
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        raise DataFormatError(Problem("--protocol", f"unknown evaluation protocol '{name}'",
                                      f"use one of: {', '.join(sorted(PROTOCOLS))}"))
    return PROTOCOLS[name]
