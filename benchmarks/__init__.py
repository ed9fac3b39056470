"""Sluice's performance suite (`make bench`): intake, reaction, scale, footprint -> benchmarks/RESULTS.md."""
