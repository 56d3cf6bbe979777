"""Credit-enhancement and rating analytics on top of the deterministic engine and the Monte
Carlo: metrics with uncertainty, rating tables, breakeven stresses, sizing, sweeps."""
