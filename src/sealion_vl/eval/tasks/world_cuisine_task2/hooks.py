"""WorldCuisines hooks: SEA-HELM's seeded re-ordering of the options and its JPEG images.

The logic is shared by both WorldCuisines tasks and lives in ``sealion_vl.eval.data``.
"""

from __future__ import annotations

from sealion_vl.eval.data import world_cuisines_docs


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """Rows as SEA-HELM's loader leaves them (see ``world_cuisines_docs``)."""
    return world_cuisines_docs(task, lang, data_dir=data_dir, limit=limit)
