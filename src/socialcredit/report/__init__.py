"""Reports: what the system does to a simulated society, in pictures, and what-if comparisons.

`society.report` turns a run directory into one self-contained HTML file (plus PNGs); `replay.replay`
rescores a run under another city's rulebook into a new run directory; `compare.compare` sets two runs of
one population side by side. Every number shown comes from a run's store through a query the page prints
under its figure. Nothing is imported here, so the CLI starts without loading matplotlib.
"""
