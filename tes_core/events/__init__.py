"""Task events: the journal every state change and new log line is written to, the
per-process hub that streams it to ``GET /events`` listeners, and webhooks.

The journal is fed through the ``tes_task_state_changed`` and ``tes_task_logged`` hooks,
so it works wherever a change happens (an API process, a worker) and a plugin can
observe exactly what it observes.
"""
