"""Exceptions raised by sealion-vl.

Everything the toolkit raises on purpose derives from :class:`SealionError`, so callers (the CLI,
the server) can tell "bad input, show the message" apart from genuine bugs with one ``except``.
"""

from __future__ import annotations


class SealionError(Exception):
    """Base class for every error sealion-vl raises deliberately."""


class MediaError(SealionError, ValueError):
    """An image, video or audio input could not be loaded.

    Also a ``ValueError`` because it is one (the value given was unusable), so code written
    against the plain ``ValueError`` that ``transformers`` loaders raise keeps working. The message
    names the input (shortened) and says what to do about it.
    """


class CheckpointNotFoundError(SealionError, FileNotFoundError):
    """A model name, folder or hub id could not be resolved to a checkpoint."""


class UnsupportedModelError(SealionError, ValueError):
    """The checkpoint's architecture (or family) is not one sealion-vl runs."""


class ModalityError(SealionError, ValueError):
    """A conversation holds an image/video/audio part the loaded model cannot take."""


class ContextLengthError(SealionError, ValueError):
    """The prompt (plus the requested new tokens) does not fit the model's context."""


class MessageFormatError(SealionError, ValueError):
    """A conversation is not in a shape sealion-vl understands (OpenAI or HF style)."""


class StructuredOutputError(SealionError, ValueError):
    """A ``response_format``, ``tools`` or ``tool_choice`` cannot be enforced as given.

    The message names the offending field (e.g. ``response_format.json_schema.schema``) and
    what shape was expected.
    """


class EvalDataError(SealionError, ValueError):
    """An evaluation dataset, task folder or replies file is not usable as given.

    The message names the task, language and the offending rows (for example CVQA's hidden
    public labels, ``Label == -1``), so nothing is scored on data that cannot be scored.
    """
