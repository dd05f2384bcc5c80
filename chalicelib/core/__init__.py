"""The pure core: ids, limits, decisions and tokens. Stdlib only, no I/O."""
