"""Small utilities every layer may use: atomic files, index specs, devices, progress and logs."""
