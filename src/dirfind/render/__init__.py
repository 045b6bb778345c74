"""Rendering: traversals of direction banks into grids, GIFs and frames."""

from .images import grid, to_uint8, write_traversal
from .traverse import base_latents, render, signed_distance, traversal_latents, traverse, working_space

__all__ = [
    "base_latents",
    "grid",
    "render",
    "signed_distance",
    "to_uint8",
    "traversal_latents",
    "traverse",
    "working_space",
    "write_traversal",
]
