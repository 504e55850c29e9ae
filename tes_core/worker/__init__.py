"""Background work: Dramatiq actors for submit, cancel and reconcile, and the worker process."""
