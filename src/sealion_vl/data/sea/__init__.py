"""Southeast-Asian relevance of image-caption data: score one caption, or filter a dataset.

Modules: :mod:`~sealion_vl.data.sea.lang` (scripts and language ID),
:mod:`~sealion_vl.data.sea.index` (the entity tables in ``entities/*.yaml``),
:mod:`~sealion_vl.data.sea.score` (``score_caption`` and its weights),
:mod:`~sealion_vl.data.sea.task` (one unit of the filter job, and the process pool) and
:mod:`~sealion_vl.data.sea.filter` (``filter_captions``, the job). Import from this package:
the names below are the public API; the other public names of the modules are shared
between them only.
"""

from sealion_vl.data.sea.filter import (
    BadRow,
    FilterError,
    FilterReport,
    LanguageCount,
    ShardFailure,
    ShardStats,
    filter_captions,
)
from sealion_vl.data.sea.index import EntityDataError
from sealion_vl.data.sea.lang import SEA_LANGUAGES, detect_language
from sealion_vl.data.sea.score import (
    LANG_WEIGHT,
    LOCALE_WEIGHT,
    META_LANG_WEIGHT,
    MINOR_SCRIPT_WEIGHT,
    SEA_COUNTRIES,
    ZH_ENTITY_WEIGHT,
    ScoreResult,
    score_caption,
)

__all__ = [
    "LANG_WEIGHT",
    "LOCALE_WEIGHT",
    "META_LANG_WEIGHT",
    "MINOR_SCRIPT_WEIGHT",
    "SEA_COUNTRIES",
    "SEA_LANGUAGES",
    "ZH_ENTITY_WEIGHT",
    "BadRow",
    "EntityDataError",
    "FilterError",
    "FilterReport",
    "LanguageCount",
    "ScoreResult",
    "ShardFailure",
    "ShardStats",
    "detect_language",
    "filter_captions",
    "score_caption",
]
