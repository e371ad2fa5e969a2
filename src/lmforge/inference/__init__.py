"""lmforge.inference."""
