"""Rendering: traversals of direction banks into grids, GIFs and frames."""

from .batched import render
from .edit import bank_edit, signed_distance, traversal_latents
from .images import grid, to_uint8, write_traversal
from .latents import read_latents
from .traverse import TraverseOptions, traverse

__all__ = [
    "TraverseOptions",
    "bank_edit",
    "grid",
    "read_latents",
    "render",
    "signed_distance",
    "to_uint8",
    "traversal_latents",
    "traverse",
    "write_traversal",
]
