"""``sealion_vl.rl``: GRPO with verifiable rewards on image+text prompts, through TRL.

The rewards (:mod:`sealion_vl.rl.rewards`, :mod:`sealion_vl.rl.answers`) are plain
functions with TRL's calling convention and import no torch; :func:`rl` runs a recipe
(:class:`RLRecipe`, read by :func:`load_rl_recipe`). ``rl`` is imported lazily so that using
the rewards stays cheap.
"""

from sealion_vl.rl.answers import exact_answer, mcq_letter_match
from sealion_vl.rl.config import RLRecipe, load_rl_recipe
from sealion_vl.rl.registry import REWARDS, bind, combine, resolve_reward
from sealion_vl.rl.rewards import (
    RewardInputError,
    answer_tag_format,
    extract_number,
    ifeval_reward,
    json_schema_valid,
    numeric_match,
)


def __getattr__(name: str):
    if name == "rl":
        from sealion_vl.rl.run import rl

        return rl
    raise AttributeError(f"module 'sealion_vl.rl' has no attribute {name!r}")


__all__ = [
    "REWARDS",
    "RLRecipe",
    "RewardInputError",
    "answer_tag_format",
    "bind",
    "combine",
    "exact_answer",
    "extract_number",
    "ifeval_reward",
    "json_schema_valid",
    "load_rl_recipe",
    "mcq_letter_match",
    "numeric_match",
    "resolve_reward",
    "rl",
]
