"""Merging checkpoints of one family: mergekit's YAML, streamed tensor by tensor.

``merge(config, out)`` is the public function; ``sealion-vl merge CONFIG.yaml OUT`` calls it.
"""

from sealion_vl.merge.config import MergeConfig, MergeError, load_config
from sealion_vl.merge.run import merge

__all__ = ["MergeConfig", "MergeError", "load_config", "merge"]
