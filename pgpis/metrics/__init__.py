"""Image metrics under named protocols, and `pgpis evaluate`.

The main entry points are re-exported lazily so that importing one submodule
(e.g. ``pgpis.metrics.ssim``) does not pay for lpips / clean-fid:

- :func:`evaluate_folder`, :func:`evaluate_pairs`, :class:`EvaluationResult` (``evaluate``); each dataset's
  own entry lives in its package (e.g. :func:`pgpis.data.deepfashion.evaluate_deepfashion`)
- :func:`copy_source`, :func:`match_generated` (``pairs``)
- :class:`Protocol`, :data:`PROTOCOLS`, :func:`get_protocol`, :func:`register_protocol` (``protocols``)
- :func:`ssim_window`, :func:`ssim_gaussian` (``ssim``), :func:`build_lpips` (``lpips_net``)
- :class:`PairedImageMetrics` (``paired``): the same per-pair metrics as a torchmetrics Metric for Lightning
"""
from __future__ import annotations

from pgpis.lazy_exports import lazy_getattr

_EXPORTS = {
    "evaluate_folder": "evaluate", "evaluate_pairs": "evaluate",
    "EvaluationResult": "evaluate", "WeightPaths": "evaluate", "real_statistics": "evaluate",
    "copy_source": "pairs", "match_generated": "pairs", "generated_name": "pairs",
    "Protocol": "protocols", "PROTOCOLS": "protocols", "get_protocol": "protocols", "register_protocol": "protocols",
    "all_protocols": "protocols",
    "ssim_window": "ssim", "ssim_gaussian": "ssim", "psnr": "psnr", "build_lpips": "lpips_net",
    "CleanFidExtractor": "fid", "TorchvisionInceptionExtractor": "fid", "frechet_distance": "fid",
    "IndexedValues": "states", "PairedImageMetrics": "paired", "tensor_to_uint8": "images",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
