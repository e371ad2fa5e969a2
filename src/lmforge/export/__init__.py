"""lmforge.export."""
