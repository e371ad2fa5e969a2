"""lmforge.eval."""
