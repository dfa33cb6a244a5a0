"""The bottom layer: typed configs, errors, atomic file I/O, the run-file schema.

Standard library, pydantic and yaml only."""
