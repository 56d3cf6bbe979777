"""Charts of results (matplotlib, Agg backend): they only read the DataFrames and arrays of
:class:`~ipabs.results.RunResult`, :class:`~ipabs.montecarlo.SimulationResult`, sweep tables
and :class:`~ipabs.analytics.sizing.SizingResult`; nothing below this package imports it.

Every chart is a function of :mod:`ipabs.report.charts` returning a
:class:`matplotlib.figure.Figure`, also reachable as ``result.plot.<name>()``.
"""
