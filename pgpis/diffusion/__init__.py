"""The shared latent-diffusion core: first stages, schedules, dropout, guidance, sampler, LightningModule."""
from pgpis.diffusion.denoiser import STORED_PREFIX, ConditionalDenoiser, Conditions, ExportFolder, KeepMask, stored_tensor
from pgpis.diffusion.dropout import ConditionDropout
from pgpis.diffusion.first_stage import AutoencoderKLFirstStage, FirstStage, PixelUnshuffleFirstStage
from pgpis.diffusion.guidance import ClassifierFreeGuidance, CumulativeGuidance, GuidancePolicy, NoGuidance
from pgpis.diffusion.sampler import MaskBlend, Sampler
from pgpis.diffusion.schedules import WarmupStepDecay, build_noise_scheduler, loss_target

__all__ = [
    "ConditionalDenoiser", "Conditions", "KeepMask", "ExportFolder", "stored_tensor", "STORED_PREFIX",
    "ConditionDropout", "FirstStage", "PixelUnshuffleFirstStage",
    "AutoencoderKLFirstStage", "GuidancePolicy", "NoGuidance", "ClassifierFreeGuidance", "CumulativeGuidance",
    "Sampler", "MaskBlend", "WarmupStepDecay", "build_noise_scheduler", "loss_target", "LatentDiffusion",
]


def __getattr__(name: str):
    """`LatentDiffusion` imports Lightning; load it lazily so guidance/sampler imports stay light."""
    if name == "LatentDiffusion":
        from pgpis.diffusion.core import LatentDiffusion

        return LatentDiffusion
    raise AttributeError(name)
