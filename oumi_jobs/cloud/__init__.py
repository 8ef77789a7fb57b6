"""Clouds and clusters through oumi.launcher: the one seam, the launching process, guidance."""
