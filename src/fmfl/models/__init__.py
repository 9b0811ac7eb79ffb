"""Workstation-side model definitions (torch): the compact FMs, their towers and trainable parts."""
