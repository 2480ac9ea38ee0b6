"""The keypoint module's old home: everything is in :mod:`pgpis.pose.keypoints` (skeletons, transforms, rendering,
keypoint files), which the pose estimators, the metrics and the datasets all build on. Kept so that
``pgpis.data.keypoints`` imports keep working."""
from pgpis.pose.keypoints import *  # noqa: F401,F403
