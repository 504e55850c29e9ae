"""A fake Azure Batch service for the tests: a real HTTP server on loopback answering the
Batch REST API (2025-06-01, as ``specification/batch/data-plane`` of
Azure/azure-rest-api-specs documents it) for the operations the backend uses, checking
SharedKey signatures, with a simulator of pools, nodes and tasks that runs each task's
command line for real on this machine (see README.md beside this file)."""

from .service import FakeBatch, Recorded

__all__ = ["FakeBatch", "Recorded"]
