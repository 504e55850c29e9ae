"""A stand-in for the core's late URL signing (``BackendContext.prepare_task``), for the
compute plugins' tests: that a new attempt gets its task's URLs signed again."""

from __future__ import annotations

from dataclasses import replace

from tes_core.backends.base import TaskRecord

UNSIGNED_INPUT = {"url": "az://acct/c/a", "path": "/a"}
"""The input a test task carries as stored."""


def signed_url(number: int) -> str:
    """The URL the ``number``-th signing gives :data:`UNSIGNED_INPUT`."""
    return f"https://acct.blob.core.windows.net/c/a?sig={number}"


class CountingSigner:
    """``prepare_task``: the task with its one input signed anew on every call
    (:func:`signed_url` of the call's number)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, task: TaskRecord) -> TaskRecord:
        self.calls += 1
        signed = {**UNSIGNED_INPUT, "url": signed_url(self.calls)}
        return replace(task, urls_ready=True, document={**task.document, "inputs": [signed]})
