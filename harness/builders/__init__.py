"""Builders turn public data shipped in pip packages into BEIR task folders, deterministically."""
