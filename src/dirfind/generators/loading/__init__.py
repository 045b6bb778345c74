"""Reading checkpoint files without executing code from them: torch files, restricted NVIDIA
pickles and multi-file folders."""
