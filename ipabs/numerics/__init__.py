"""Numerical kernels every layer may use: the random number generator and the normal
distribution (below the engine, whose revolving period draws defaults, and the risk layer)."""
