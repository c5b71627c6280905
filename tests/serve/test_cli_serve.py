"""`sealion-vl serve`: flags made from ServeConfig, refused values named, a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from sealion_vl.cli import app
from sealion_vl.serve import ServeConfig


def test_help_lists_every_setting():
    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    for name, field in ServeConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in out, flag
        assert field.description.split()[0] in out
    assert "--model" in out


def test_a_bad_value_is_named_before_loading():
    r = CliRunner().invoke(app, ["serve", "--max-queue", "0", "--model", "/nonexistent"])
    assert r.exit_code == 2 and re.search(r"--max-queue", r.output), r.output


def test_media_settings_reach_the_loader(tmp_path):
    limits = ServeConfig(max_image_pixels=1234, media_fetch_timeout_s=2).media_limits()
    assert limits.max_pixels == 1234 and limits.timeout_s == 2
    assert not limits.allow_local_files and not limits.allow_private_hosts
    limits = ServeConfig(
        allowed_media_domains=["img.example", "*.cdn.example"], allowed_media_dir=tmp_path
    ).media_limits()
    assert limits.allowed_domains == ("img.example", "*.cdn.example")
    assert limits.allowed_local_dir == str(tmp_path)


def test_allowed_media_dir_serves_its_files_only(checkpoint, media_dir, tmp_path):
    import shutil

    import sealion_vl
    from tests.serve.conftest import image_turn, post, start

    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(media_dir / "a.png", shared / "a.png")
    (shared / "escape.png").symlink_to(media_dir / "b.jpg")
    m = sealion_vl.load(checkpoint("gemma3"))  # its own model: this server reads local files
    s = start(m, allowed_media_dir=shared)
    try:
        ok = post(s, {"messages": image_turn(str(shared / "a.png")), "max_tokens": 2})
        assert ok.status_code == 200, ok.text
        for outside in (str(media_dir / "b.jpg"), str(shared / "escape.png"), "/etc/passwd"):
            r = post(s, {"messages": image_turn(outside), "max_tokens": 2})
            assert r.status_code == 400, (outside, r.text)
            assert r.json()["error"]["code"] == "invalid_media"
    finally:
        s.stop()


def test_serve_runs_as_a_process(checkpoint, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SEALION_VL_API_KEY": "k1"}
    cmd = [sys.executable, "-m", "sealion_vl.cli", "serve", "--model", str(checkpoint("gemma3"))]
    cmd += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        assert httpx.get(url + "/v1/models").status_code == 401  # the key came from the env
        r = httpx.post(
            url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Hai"}], "max_tokens": 2},
            headers={"Authorization": "Bearer k1"},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 2
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert f"http://127.0.0.1:{port}/v1" in out and "API key required" in out
