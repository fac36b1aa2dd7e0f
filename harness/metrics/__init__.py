"""Metric families: functions from a task, a run and embeddings to flat `{name: value}` dicts."""
