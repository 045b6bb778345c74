"""Network definitions (plain PyTorch, written from the papers and reference layouts) and ops."""
