"""Shipped task folders (task.yaml + optional hooks.py) and code they share."""
