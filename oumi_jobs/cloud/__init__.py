"""Clouds and clusters through oumi.launcher: the one seam (adapter, wire, model, facts), its oumi adapter, guidance."""
