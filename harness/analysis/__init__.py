"""Analysis of finished runs: curves (peak, collapse, leading indicators), HTML reports, the study report, the terminal summary. Imports no model code."""
