"""Re-exports :mod:`pgpis.images` (the one way an image enters pgpis) under its former path."""
from pgpis.images import *  # noqa: F401,F403
from pgpis.images import __all__  # noqa: F401
