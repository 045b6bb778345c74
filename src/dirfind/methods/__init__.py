"""Direction-discovery methods: each is a pure function from a generator and options to a bank."""

from .ganspace import ganspace
from .sefa import sefa

__all__ = ["ganspace", "sefa"]
