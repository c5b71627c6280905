"""One-command demonstrations of the adapt recipe on nano (issue 17): merging, logit
distillation and RL, each measured with the eval runner on held-out nano task folders.

``sealion-vl nano demo NAME WORK`` runs ``sealion_vl.nano.demos.<NAME>.run(WORK)``: every
demo starts from nothing but the shipped nano, reuses finished steps when rerun, and saves
its numbers (with the ``sealion-vl eval run`` commands that measured them) in
``WORK/<NAME>.json``; the numbers on nano's card come from these runs.
"""

from __future__ import annotations

#: The demonstrations ``sealion-vl nano demo`` knows, with a line each for ``--help``.
DEMOS = {
    "merge": "merge nano (SEA SFT) back with its general-stage model; English vs SEA scores",
    "distill": "a smaller nano student: distilled from nano vs trained on labels alone",
    "rl": "GRPO with a verifiable reward on fresh prompts; held-out reward before and after",
}
