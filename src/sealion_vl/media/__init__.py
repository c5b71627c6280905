"""Load images, video and audio from anything a user, a chat request or a dataset row can hold.

This is the one media loader of the toolkit (chat, server, training data). Keeping it single
means a picture becomes the same pixels everywhere (we follow ``transformers.image_utils.
load_image``: EXIF orientation, then a plain ``convert("RGB")``), and the server's safety limits
(byte and pixel caps, timeouts, the SSRF guard, no local files) cannot be skipped by a code path
that happened to open files its own way.

Every failure is a :class:`~sealion_vl.errors.MediaError` whose message names the input (shortened,
so a 5 MB data URI does not end up in a log line) and says what to do about it. Raw PIL, PyAV or
httpx exceptions never escape; they are chained as ``__cause__`` for debugging.

Decoders only ever see bytes already held in memory (never a path or URL), so container formats
that reference other files or URLs (HLS playlists, ffconcat lists) cannot make FFmpeg open
anything on its own.

``MediaLimits()`` suits local use (any path, any host); ``MediaLimits.for_server()`` is for a
server exposed to untrusted clients: no local files (unless ``allowed_local_dir``), the SSRF
guard on, tight deadlines. Under the guard every hop's host is resolved once with
``MediaLimits.address_policy`` (an :class:`AddressPolicy`: the system resolver and
:func:`is_public_ip` by default; pass your own to change what the guard sees), every address and
every spelling of an IP literal is judged, and the connection is pinned to the checked
addresses while TLS still verifies the host name.

Modules, split by job: :mod:`~sealion_vl.media.common` (limits, address policy, :class:`Video`,
log-safe messages), :mod:`~sealion_vl.media.fetch` (reading sources, local files, data URIs),
:mod:`~sealion_vl.media.http` (http(s), the SSRF guard and its pinned transport),
:mod:`~sealion_vl.media.image` and :mod:`~sealion_vl.media.av` (video and audio).
Import from this package: the names below are the public API.
"""

from sealion_vl.media.av import audio_from_openai, load_audio, load_video
from sealion_vl.media.common import AddressPolicy, MediaLimits, Source, Video, is_public_ip
from sealion_vl.media.fetch import fetch_bytes
from sealion_vl.media.image import load_image

__all__ = [
    "AddressPolicy",
    "MediaLimits",
    "Source",
    "Video",
    "audio_from_openai",
    "fetch_bytes",
    "is_public_ip",
    "load_audio",
    "load_image",
    "load_video",
]
