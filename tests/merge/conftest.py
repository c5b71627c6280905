"""Fixtures for the merge tests: three tiny checkpoints per family (seeds 0, 1, 2)."""

from __future__ import annotations

import pytest

from tests.fixtures import tiny


@pytest.fixture(scope="session")
def parents(checkpoint, tiny_root):
    """parents(family) -> [base, m1, m2]: the family's tiny checkpoint and two re-seeded ones."""
    built: dict = {}

    def get(family: str):
        if family not in built:
            out = [checkpoint(family)]
            for seed in (1, 2):
                folder = tiny_root / f"merge-{family}-{seed}"
                if not (folder / ".complete").exists():
                    folder.mkdir(parents=True, exist_ok=True)
                    tiny.BUILDERS[family](folder, seed=seed)
                    (folder / ".complete").write_text("{}")
                out.append(folder)
            built[family] = out
        return built[family]

    return get
