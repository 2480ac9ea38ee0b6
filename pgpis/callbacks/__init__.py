"""Callbacks: CFG sample grids during training, DDIM inference of whole splits, pair metrics."""
from pgpis.callbacks.ema import EMAWeightAveraging
from pgpis.callbacks.inference import DDIMInference
from pgpis.callbacks.metrics import PairMetrics
from pgpis.callbacks.sampling import CFGSampling

__all__ = ["CFGSampling", "DDIMInference", "EMAWeightAveraging", "PairMetrics"]
