"""Analysis over stored results: gates (and later comparisons and cost), no UI, no heavy imports."""
