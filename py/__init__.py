"""Vid4D library: pure torch/numpy functions, no ComfyUI imports.

Import modules as ``vid4d.py.<module>`` (or relatively); never as a top-level ``py`` package,
which pytest ships a module of that name.
"""
