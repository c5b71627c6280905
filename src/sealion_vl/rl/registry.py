"""The reward registry (names a recipe can use), binding fixed parameters, weighted sums.

Kept apart from the reward functions so that they stay a plain list of scorers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sealion_vl.rl.answers import exact_answer, mcq_letter_match
from sealion_vl.rl.rewards import (
    RewardFunc,
    RewardInputError,
    answer_tag_format,
    ifeval_reward,
    json_schema_valid,
    numeric_match,
)

REWARDS: dict[str, RewardFunc] = {
    "numeric": numeric_match,
    "ifeval": ifeval_reward,
    "answer_tag": answer_tag_format,
    "json_schema": json_schema_valid,
    "mcq_letter": mcq_letter_match,
    "exact": exact_answer,
}


def resolve_reward(name: str) -> RewardFunc:
    """A reward by registry name (``numeric``...) or by import path (``pkg.module:function``)."""
    if name in REWARDS:
        return REWARDS[name]
    if ":" in name:
        import importlib

        module, _, attr = name.partition(":")
        try:
            func = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise RewardInputError(f"cannot import reward {name!r}: {e}") from None
        if callable(func):
            return func
    raise RewardInputError(
        f"unknown reward {name!r}; known: {sorted(REWARDS)}, or an import path 'module:function'"
    )


def bind(name: str, **params) -> RewardFunc:
    """Reward ``name`` (see :func:`resolve_reward`) with fixed params (dataset columns win).

    The returned function keeps TRL's convention and is named after the reward, since TRL
    logs each reward under its function's ``__name__``.
    """
    base = resolve_reward(name)

    def reward(prompts, completions, **columns):
        merged = {**params, **{k: v for k, v in columns.items() if v is not None}}
        return base(prompts, completions, **merged)

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = base.__doc__
    return reward


def combine(weighted: Sequence[tuple[RewardFunc, float]], name: str = "combined") -> RewardFunc:
    """One reward that is the weighted sum of several: ``sum(w * f(...))`` per completion.

    (Within TRL, passing the functions as ``reward_funcs`` with ``reward_weights`` gives the
    same sum and logs each part; this is for using the sum anywhere else.)
    """
    if not weighted:
        raise RewardInputError("combine needs at least one (reward, weight) pair")

    def reward(prompts, completions, **columns):
        total = [0.0] * len(completions)
        for func, w in weighted:
            scores = [s if s is not None else 0.0 for s in func(prompts, completions, **columns)]
            total = [t + w * s for t, s in zip(total, scores, strict=True)]
        return total

    reward.__name__ = reward.__qualname__ = name
    return reward
