"""Shipped task folders (task.yaml + optional hooks.py), the hooks modules several folders
name (``hooks:`` in task.yaml: nano_common, hallusionbench_common, mmmu_pro_standard) and
the task.yaml schema (:mod:`.spec`)."""
