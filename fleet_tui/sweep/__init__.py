"""Sweeps: the plan (cells per node), artifacts, typed scheduler events and the scheduler."""
