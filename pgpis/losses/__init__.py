"""Training losses shared by the stages."""
