"""Data jobs: caption filtering (``sea_filter``) and, later, formats, synthesis and packing."""
