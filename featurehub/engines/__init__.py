"""Materialization engines: compute a view's rows from its source for an interval."""
