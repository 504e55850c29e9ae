"""Compute backends: the small interface every backend implements, and the built-in one."""

from .base import Backend, BackendContext, Observation, TaskRecord, TaskReporter

__all__ = ["Backend", "BackendContext", "Observation", "TaskRecord", "TaskReporter"]
