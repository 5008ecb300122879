"""couchlite benchmarks: ``make bench`` (``python -m bench``)."""
