"""Analysis over stored results: gates, the comparison, cost and capex, and the one table model."""
