"""Inference: load trained stages (checkpoint or export folder), generate from PIL images and keypoints, export."""
from pgpis.inference.estimated_poses import PoseFromImage
from pgpis.inference.export import export, export_pipeline, load_exported
from pgpis.inference.pipeline import Pipeline, load_pipeline
from pgpis.inference.poses import TargetPose, load_target_pose

__all__ = ["Pipeline", "load_pipeline", "export", "export_pipeline", "load_exported", "TargetPose", "load_target_pose",
           "PoseFromImage"]
