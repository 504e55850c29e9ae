"""Fixtures: task documents from this folder's ``documents/`` and the shared fixtures."""

from __future__ import annotations

from tests.submitters import document_fixture, plugin_documents

document = document_fixture(plugin_documents(__file__))
