"""Post-training: continued pre-training and SFT (recipes in ``recipes/``)."""

from sealion_vl.train.recipe import Recipe, load_recipe


def run(recipe: Recipe, *, resume: bool = False, progress: bool = True):
    """Run a training recipe (see :func:`sealion_vl.train.sft.train`)."""
    from sealion_vl.train.sft import train

    return train(recipe, resume=resume, progress=progress)


__all__ = ["Recipe", "load_recipe", "run"]
