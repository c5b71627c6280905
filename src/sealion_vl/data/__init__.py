"""Data jobs: training-data formats and readers (``formats``, ``readers``, ``records``) and
Southeast-Asian caption filtering (``sea``)."""
