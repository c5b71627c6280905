"""Logit distillation: a teacher's distributions (offline top-k cache or online) into a student.

``distill(recipe)`` is the job (``sealion-vl distill CONFIG.yaml``); recipes in ``recipes/``.
"""

from sealion_vl.distill.config import DistillRecipe, load_distill_recipe


def distill(recipe: DistillRecipe, *, resume: bool = False, progress: bool = True):
    """Run a distillation recipe (see :func:`sealion_vl.distill.run.distill`)."""
    from sealion_vl.distill.run import distill as _run

    return _run(recipe, resume=resume, progress=progress)


__all__ = ["DistillRecipe", "distill", "load_distill_recipe"]
