"""Data shipped with ipabs (read with :mod:`importlib.resources`, so an installed package finds it).

- ``ratings/default.yaml`` — the default rating table (see :mod:`ipabs.analytics.ratings`).
"""
