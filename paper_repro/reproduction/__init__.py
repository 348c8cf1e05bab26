"""The reproduction's machinery: what runs the notebooks, judges the paper's claims and writes what a reader sees.

- `notebooks` (`make reproduce`: papermill, skipping unchanged notebooks), `lanes` (every arm trained first in
  parallel processes), `arms` (those runs, one command each), `campaign` (the paper profile's runs on a GPU);
- `outputs` (tables and figures with their stamp), `index` (results/README.md and the README's summary),
  `navigation` (links between notebooks, their runtimes), `reading` (tables for reading);
- `noise` (run-to-run σ), `verdicts` (claim against measurement ± 2σ), `claims` (each notebook's claims),
  `headlines` (this machine's numbers against the committed ones), `tables` (ours beside the published ones).

It builds on the method (the package root) and the comparisons (`studies/`); neither imports it
(tests/test_layout.py).
"""
