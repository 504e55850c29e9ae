"""Observability: request ids and secret redaction on every log record, Prometheus
metrics, and OpenTelemetry export to Azure Monitor."""
