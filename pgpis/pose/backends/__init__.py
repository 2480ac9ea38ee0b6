"""Pose-estimator backends. Each module imports its optional dependency only when an estimator is built."""
