"""Evaluation: SEA-HELM's vision and instruction-following tasks, scored as SEA-HELM does."""
