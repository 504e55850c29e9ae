"""marshmallow schemas for what clients send: task documents and list queries."""

from .query import ListQuery, parse_list_query, parse_view
from .task import TaskSchema, load_task

__all__ = ["ListQuery", "TaskSchema", "load_task", "parse_list_query", "parse_view"]
