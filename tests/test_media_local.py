"""Local files under MediaLimits: refused on a server unless ``allowed_local_dir`` is set, then
only real paths inside that directory (symlinks and ``..`` resolved), regular files only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sealion_vl.errors import MediaError
from sealion_vl.media import MediaLimits, load_audio, load_image, load_video
from tests.test_media import png_bytes

IMAGE = png_bytes()
OUTSIDE = "outside the allowed media directory"


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """allowed/ (the media dir) beside secret/, with links both ways."""
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    (allowed / "a.png").write_bytes(IMAGE)
    (allowed / "sub" / "b.png").write_bytes(IMAGE)
    (secret / "s.png").write_bytes(IMAGE)
    (allowed / "link-in.png").symlink_to(allowed / "sub" / "b.png")
    (allowed / "link-out.png").symlink_to(secret / "s.png")
    (allowed / "dir-out").symlink_to(secret, target_is_directory=True)
    (allowed / "dev-zero").symlink_to("/dev/zero")
    return {"allowed": allowed, "secret": secret}


def _server(tree: dict[str, Path], **kw) -> MediaLimits:
    return MediaLimits.for_server(allowed_local_dir=str(tree["allowed"]), **kw)


def test_files_inside_the_directory_are_read(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    limits = _server(tree)
    assert limits.allow_local_files is False  # the directory alone opens the door
    for src in (
        allowed / "a.png",
        str(allowed / "a.png"),
        (allowed / "a.png").as_uri(),
        "a.png",  # relative paths start at the allowed directory
        "sub/b.png",
        "sub/../a.png",
        str(allowed / "sub" / ".." / "a.png"),
        allowed / "link-in.png",  # a symlink that stays inside
        f"file://localhost{allowed / 'sub' / 'b.png'}",
    ):
        assert load_image(src, limits).size == (32, 16), src


@pytest.mark.parametrize(
    "make_src",
    [
        lambda t: t["secret"] / "s.png",
        lambda t: str(t["secret"] / "s.png"),
        lambda t: (t["secret"] / "s.png").as_uri(),
        lambda t: "../secret/s.png",
        lambda t: str(t["allowed"] / ".." / "secret" / "s.png"),
        lambda t: "sub/../../secret/s.png",
        lambda t: t["allowed"] / "link-out.png",  # symlink escape
        lambda t: "link-out.png",
        lambda t: "dir-out/s.png",  # through a symlinked directory
        lambda t: (t["allowed"] / "dir-out" / "s.png").as_uri(),
        lambda t: "dev-zero",  # a device behind a symlink
        lambda t: "/etc/passwd",
        lambda t: "file:///etc/passwd",
        lambda t: "/etc/no-such-file",  # outside: same answer whether it exists or not
        lambda t: "~/.ssh/id_rsa",  # no home-directory expansion on a confined server
        lambda t: "%2e%2e/secret/s.png",
    ],
)
def test_paths_leading_outside_are_refused(tree: dict[str, Path], make_src) -> None:
    src = make_src(tree)
    if str(src) == "%2e%2e/secret/s.png":  # not decoded: just a missing file inside
        with pytest.raises(MediaError, match="no such file"):
            load_image(src, _server(tree))
        return
    if str(src).startswith("~"):
        with pytest.raises(MediaError, match="no such file"):
            load_image(src, _server(tree))  # read as allowed/~/.ssh/id_rsa, which is absent
        return
    with pytest.raises(MediaError, match=OUTSIDE) as info:
        load_image(src, _server(tree))
    if "secret" not in str(src):  # where a symlink points is not revealed
        assert "secret" not in str(info.value)


def test_non_regular_files_inside_are_refused(tree: dict[str, Path]) -> None:
    allowed = tree["allowed"]
    os.mkfifo(allowed / "pipe")
    limits = _server(tree)
    for src in ("pipe", "sub", str(allowed)):
        started = time.monotonic()
        with pytest.raises(MediaError, match="not a regular file"):
            load_image(src, limits)
        assert time.monotonic() - started < 1  # a FIFO must not block the reader


def test_byte_cap_applies_inside(tree: dict[str, Path]) -> None:
    (tree["allowed"] / "big.png").write_bytes(IMAGE + b"\0" * 5000)
    with pytest.raises(MediaError, match="1,000-byte limit"):
        load_image("big.png", _server(tree, max_bytes=1000))


def test_missing_file_inside_and_missing_directory(tree: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        load_image("nope.png", _server(tree))
    gone = MediaLimits.for_server(allowed_local_dir=str(tmp_path / "gone"))
    with pytest.raises(MediaError, match="allowed media directory does not exist"):
        load_image("a.png", gone)


def test_allowed_dir_may_itself_be_a_symlink(tree: dict[str, Path], tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(tree["allowed"], target_is_directory=True)
    limits = MediaLimits.for_server(allowed_local_dir=str(alias))
    assert load_image(alias / "a.png", limits).size == (32, 16)
    assert load_image(tree["allowed"] / "a.png", limits).size == (32, 16)
    with pytest.raises(MediaError, match=OUTSIDE):
        load_image(tree["secret"] / "s.png", limits)


def test_video_and_audio_share_the_rule(tree: dict[str, Path]) -> None:
    limits = _server(tree)
    with pytest.raises(MediaError, match=OUTSIDE):
        load_video(tree["secret"] / "s.png", limits)
    with pytest.raises(MediaError, match=OUTSIDE):
        load_audio("../secret/s.png", limits)


def test_local_use_is_unchanged(tree: dict[str, Path]) -> None:
    # `sealion-vl chat`: any path, symlinks followed, as before; still regular files only.
    assert load_image(tree["allowed"] / "link-out.png").size == (32, 16)
    for device in ("/dev/zero", tree["allowed"] / "dev-zero"):
        with pytest.raises(MediaError, match="not a regular file"):
            load_image(device)
    assert load_image(tree["secret"] / "s.png").size == (32, 16)
    with pytest.raises(MediaError, match="local files are not allowed"):
        load_image(tree["secret"] / "s.png", MediaLimits.for_server())
