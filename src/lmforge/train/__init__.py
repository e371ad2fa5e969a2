"""lmforge.train."""
