"""The SSRF guard of sealion_vl.media: address spellings, pinning, redirects, deadlines, caps.

Nothing here connects outside 127.0.0.0/8: host names are answered by the resolver seam
(``AddressPolicy(resolve=...)``) and pointed at helper servers started on loopback, and
``is_public`` is widened only to the loopback addresses a test needs.
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sealion_vl.errors import MediaError
from sealion_vl.media import AddressPolicy, MediaLimits, fetch_bytes, load_image
from tests.test_media import png_bytes

IMAGE = png_bytes()


# --------------------------------------------------------------------------- helpers


class Resolver:
    """The resolver seam: answers from a table (or a sequence per host) and records calls."""

    def __init__(self, answers: dict[str, list[list[str]]] | None = None, default=None) -> None:
        self.answers = {host: list(seq) for host, seq in (answers or {}).items()}
        self.default = default
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        seq = self.answers.get(host)
        if seq:
            return seq.pop(0) if len(seq) > 1 else seq[0]
        if self.default is not None:
            return list(self.default)
        raise OSError(f"no such host {host}")


def loopback_only(*allowed: str) -> Callable[[str], bool]:
    """is_public that lets exactly these loopback addresses through (and nothing private)."""
    return lambda address: address in allowed


def guarded(
    resolver: Resolver, is_public: Callable[[str], bool] | None = None, **kw
) -> MediaLimits:
    policy = AddressPolicy(resolve=resolver, **({"is_public": is_public} if is_public else {}))
    return MediaLimits(allow_private_hosts=False, address_policy=policy, **kw)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # clients hang up on purpose
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, seconds: float, every: float) -> None:
        stop = time.monotonic() + seconds
        try:
            while time.monotonic() < stop:
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(every)
        except OSError:
            pass

    def do_GET(self) -> None:
        self.server.seen.append((self.headers.get("Host"), self.path))  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        if path == "/image.png":
            self._send(200, IMAGE, Content_Type="image/png")
        elif path == "/to":  # /to?<absolute or relative location>
            self._send(302, Location=query)
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            self._send(302, Location=f"/chain/{left - 1}" if left else "/image.png")
        elif path == "/gzip":  # a gzip bomb: 10 MB of zeros in ~10 kB
            body = gzip.compress(b"\0" * 10 * 2**20)
            self._send(200, body, Content_Encoding="gzip")
        elif path == "/endless":  # no Content-Length: only the streaming cap stops it
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(16 * 64):
                    self.wfile.write(b"\0" * 2**16)
            except OSError:
                pass
        elif path == "/trickle-body":  # every read is quick, the whole body never ends
            self.send_response(200)
            self.send_header("Content-Length", str(10**6))
            self.end_headers()
            self._trickle(6, 0.05)
        elif path == "/trickle-slow":  # one byte per 0.4 s: each read well inside the timeout
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self._trickle(6, 0.4)
        elif path == "/trickle-headers":  # the status line, then one header byte at a time
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._trickle(6, 0.05)
        else:
            self._send(404)


def _start(host: str = "127.0.0.1", context: ssl.SSLContext | None = None) -> _Server:
    httpd = _Server((host, 0), Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _stop(httpd: _Server) -> None:
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    httpd = _start()
    yield httpd
    _stop(httpd)


@pytest.fixture
def seen(server: _Server) -> list:
    server.seen.clear()  # type: ignore[attr-defined]
    return server.seen  # type: ignore[attr-defined]


def port_of(httpd: _Server) -> int:
    return httpd.server_address[1]


# --------------------------------------------------------------------------- every spelling


SPELLINGS = [
    "http://127.0.0.1/a.png",
    "HTTP://127.0.0.1/a.png",
    "https://127.0.0.1/a.png",
    "http://127.0.0.1./a.png",
    "http://127.1/a.png",
    "http://0x7f.1/a.png",
    "http://0x7f.0x0.0x0.0x1/a.png",
    "http://0x7f000001/a.png",
    "http://2130706433/a.png",
    "http://017700000001/a.png",
    "http://0177.0.0.1/a.png",
    "http://127。0。0。1/a.png",
    "http://0.0.0.0/a.png",
    "http://0/a.png",
    "http://10.0.0.1/a.png",
    "http://172.16.0.1/a.png",
    "http://192.168.1.1/a.png",
    "http://100.64.0.1/a.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://224.0.0.1/a.png",
    "http://240.0.0.1/a.png",
    "http://255.255.255.255/a.png",
    "http://[::1]/a.png",
    "http://[::]/a.png",
    "http://[::ffff:127.0.0.1]/a.png",
    "http://[::ffff:7f00:1]/a.png",
    "http://[::ffff:169.254.169.254]/a.png",
    "http://[::127.0.0.1]/a.png",
    "http://[64:ff9b::7f00:1]/a.png",
    "http://[64:ff9b::a9fe:a9fe]/a.png",
    "http://[2002:7f00:1::]/a.png",
    "http://[2002:a00:1::1]/a.png",
    "http://[fe80::1]/a.png",
    "http://[fe80::1%25eth0]/a.png",
    "http://[fd00:ec2::254]/a.png",
    "http://[fc00::1]/a.png",
    "http://[fec0::1]/a.png",
    "http://[ff02::1]/a.png",
    "http://evil.example@127.0.0.1/a.png",
    "http://user:hunter2@127.0.0.1:8080/a.png",
    "http://evil.example\\@127.0.0.1/a.png",
    "http://127.0.0.1#@evil.example/a.png",
    "http://%31%32%37.0.0.1/a.png",
    "http://127%2e0%2e0%2e1/a.png",
    "http://1.2.3.4.5/a.png",
    "http://256.0.0.1/a.png",
]


@pytest.mark.parametrize("url", SPELLINGS)
def test_every_spelling_of_a_private_address_is_refused(url: str) -> None:
    # The resolver would call anything public: IP literals must never reach it.
    resolver = Resolver(default=["93.184.216.34"])
    with pytest.raises(MediaError) as info:
        fetch_bytes(url, guarded(resolver))
    message = str(info.value)
    assert message.startswith("Cannot load media 'http"), message
    assert any(why in message for why in ("non-public address", "invalid URL", "refusing host"))
    assert "hunter2" not in message
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url",
    ["http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://[::ffff:127.0.0.1]/"],
)
def test_numeric_spellings_are_judged_as_the_address_they_mean(url: str) -> None:
    with pytest.raises(MediaError, match=r"is non-public address (127\.0\.0\.1|::ffff:7f00:1)"):
        fetch_bytes(url, guarded(Resolver()))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "100.100.100.200",
        "100.64.1.1",
        "0.0.0.0",
        "::1",
        "::ffff:10.0.0.1",
        "fd00:ec2::254",
        "64:ff9b::a00:1",
        "2002:a00:1::",
        "fe80::1%eth0",
    ],
)
def test_host_name_resolving_to_a_private_address_is_refused(address: str) -> None:
    for name in ("media.example", "media.example.", "localhost"):
        resolver = Resolver(default=[address])
        with pytest.raises(MediaError, match="resolves to non-public address"):
            fetch_bytes(f"http://{name}/a.png", guarded(resolver))
        assert resolver.calls == [name]


def test_unresolvable_and_empty_answers_are_refused() -> None:
    with pytest.raises(MediaError, match="cannot resolve host 'nowhere.example'"):
        fetch_bytes("http://nowhere.example/a.png", guarded(Resolver()))
    with pytest.raises(MediaError, match="cannot resolve host"):
        fetch_bytes("http://empty.example/a.png", guarded(Resolver({"empty.example": [[]]})))


def test_the_default_guard_refuses_loopback_with_the_system_resolver(server: _Server) -> None:
    limits = MediaLimits.for_server()
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(MediaError, match="non-public address"):
            fetch_bytes(f"http://{host}:{port_of(server)}/image.png", limits)
    assert server.seen == []  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- pinning


def test_connection_goes_to_the_address_resolved_once(server: _Server, seen: list) -> None:
    # First answer 127.0.0.1 (where the server is), any later one 127.0.0.2 (nothing listens
    # there). Only one lookup may happen, and the request must reach the server as pinned, with
    # the real name in the Host header. "media.test" is not in any real DNS, so a second lookup
    # by httpx itself would fail too.
    resolver = Resolver({"media.test": [["127.0.0.1"], ["127.0.0.2"]]})
    limits = guarded(resolver, loopback_only("127.0.0.1", "127.0.0.2"))
    url = f"http://media.test:{port_of(server)}/image.png"
    assert fetch_bytes(url, limits) == IMAGE
    assert resolver.calls == ["media.test"]
    assert seen == [(f"media.test:{port_of(server)}", "/image.png")]


def test_every_hop_is_resolved_again(server: _Server, seen: list) -> None:
    port = port_of(server)
    url = f"http://media.test:{port}/to?/image.png"
    # The second lookup of the same name answers a private address: refused at that hop.
    rebinding = Resolver({"media.test": [["127.0.0.1"], ["10.9.9.9"]]})
    with pytest.raises(MediaError, match=r"resolves to non-public address 10\.9\.9\.9"):
        fetch_bytes(url, guarded(rebinding, loopback_only("127.0.0.1")))
    assert rebinding.calls == ["media.test", "media.test"]
    assert seen == [(f"media.test:{port}", "/to?/image.png")]
    steady = Resolver({"media.test": [["127.0.0.1"]]})
    assert fetch_bytes(url, guarded(steady, loopback_only("127.0.0.1"))) == IMAGE
    assert steady.calls == ["media.test", "media.test"]


def test_every_checked_address_may_be_tried(server: _Server) -> None:
    # Nothing listens on 127.0.0.3: the connection falls through to the next checked address.
    resolver = Resolver({"media.test": [["127.0.0.3", "127.0.0.1"]]})
    limits = guarded(resolver, loopback_only("127.0.0.1", "127.0.0.3"))
    assert fetch_bytes(f"http://media.test:{port_of(server)}/image.png", limits) == IMAGE


# --------------------------------------------------------------------------- https pinning


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A throwaway CA and a certificate for media.test, served by an https loopback server."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key, issuer_name, issuer_key, ca: bool, names=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealion test CA")])
    ca_cert = cert("sealion test CA", ca_key, ca_name, ca_key, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert("media.test", leaf_key, ca_name, ca_key, False, ["media.test"])
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
    sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    httpd = _start(context=context)
    yield {"ca": str(folder / "ca.pem"), "port": port_of(httpd), "sni": sni, "httpd": httpd}
    _stop(httpd)


def test_https_is_pinned_with_sni_and_certificate_checked_against_the_name(tls: dict) -> None:
    resolver = Resolver({"media.test": [["127.0.0.1"], ["127.0.0.2"]]})
    limits = guarded(resolver, loopback_only("127.0.0.1", "127.0.0.2"), extra_ca_file=tls["ca"])
    tls["sni"].clear()
    tls["httpd"].seen.clear()
    assert fetch_bytes(f"https://media.test:{tls['port']}/image.png", limits) == IMAGE
    assert resolver.calls == ["media.test"]
    assert tls["sni"] == ["media.test"]
    assert tls["httpd"].seen == [(f"media.test:{tls['port']}", "/image.png")]


def test_https_certificate_for_another_name_is_refused(tls: dict) -> None:
    resolver = Resolver(default=["127.0.0.1"])
    limits = guarded(resolver, loopback_only("127.0.0.1"), extra_ca_file=tls["ca"])
    with pytest.raises(MediaError, match="download failed.*(certificate|Hostname)"):
        fetch_bytes(f"https://other.test:{tls['port']}/image.png", limits)
    # And without trusting the test CA, even the right name is refused: verification is on.
    with pytest.raises(MediaError, match="download failed.*certificate"):
        fetch_bytes(
            f"https://media.test:{tls['port']}/image.png",
            guarded(resolver, loopback_only("127.0.0.1")),
        )


# --------------------------------------------------------------------------- redirects


@pytest.fixture(scope="module")
def server2() -> Iterator[_Server]:
    """A server on 127.0.0.2, the one loopback address the redirect tests call public."""
    try:
        httpd = _start("127.0.0.2")
    except OSError:
        pytest.skip("cannot bind 127.0.0.2 here")
    yield httpd
    _stop(httpd)


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/image.png",
        "http://localhost:{port}/image.png",
        "http://2130706433:{port}/image.png",
        "http://0x7f.1:{port}/image.png",
        "http://[::ffff:127.0.0.1]:{port}/image.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://rebound.test:{port}/image.png",
    ],
)
def test_redirect_to_a_private_address_is_refused_at_the_hop(
    server: _Server, server2: _Server, location: str
) -> None:
    resolver = Resolver({"media.test": [["127.0.0.2"]], "rebound.test": [["127.0.0.1"]]})
    resolver.answers["localhost"] = [["127.0.0.1"]]
    limits = guarded(resolver, loopback_only("127.0.0.2"))
    server.seen.clear()  # type: ignore[attr-defined]
    target = location.format(port=port_of(server))
    url = f"http://media.test:{port_of(server2)}/to?{target}"
    assert fetch_bytes(f"http://media.test:{port_of(server2)}/image.png", limits) == IMAGE
    with pytest.raises(MediaError, match="non-public address") as info:
        fetch_bytes(url, limits)
    assert "media.test" in str(info.value)  # names the input the client sent
    assert server.seen == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("file:///etc/passwd", "refusing the 'file' URL scheme"),
        ("ftp://media.test/a.png", "refusing the 'ftp' URL scheme"),
        ("gopher://media.test/", "refusing the 'gopher' URL scheme"),
        ("http://other.example/a.png", "not in the allowed media domains"),
    ],
)
def test_redirect_scheme_and_domain_are_checked_again(
    server: _Server, location: str, problem: str
) -> None:
    resolver = Resolver({"media.test": [["127.0.0.1"]]}, default=["93.184.216.34"])
    limits = guarded(resolver, loopback_only("127.0.0.1"), allowed_domains=("media.test",))
    with pytest.raises(MediaError, match=problem):
        fetch_bytes(f"http://media.test:{port_of(server)}/to?{location}", limits)


def test_redirect_chain_over_the_limit_is_refused(server: _Server) -> None:
    resolver = Resolver({"media.test": [["127.0.0.1"]]})
    limits = guarded(resolver, loopback_only("127.0.0.1"), max_redirects=2)
    base = f"http://media.test:{port_of(server)}"
    assert fetch_bytes(f"{base}/chain/1", limits) == IMAGE  # 2 redirects, 3 hops
    with pytest.raises(MediaError, match="more than 2 redirects"):
        fetch_bytes(f"{base}/chain/2", limits)
    assert len(resolver.calls) == 3 + 3  # one lookup per hop, both fetches


# --------------------------------------------------------------------------- time and size


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose kernel completes TCP handshakes but whose owner never accepts or answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def _refused_within(url: str, limits: MediaLimits, match: str, bound: float) -> None:
    started = time.monotonic()
    with pytest.raises(MediaError, match=match):
        fetch_bytes(url, limits)
    assert time.monotonic() - started < bound


def test_a_server_that_never_answers_ends_at_the_deadline(silent_port: int) -> None:
    limits = guarded(Resolver(default=["127.0.0.1"]), loopback_only("127.0.0.1"), timeout_s=1.0)
    _refused_within(f"http://media.test:{silent_port}/a.png", limits, r"within 1 s", 1.8)


def test_a_connection_that_is_never_accepted_ends_at_the_connect_timeout() -> None:
    # A full accept queue: the kernel drops the SYN, so connect() hangs like a black-holed host.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    probe = socket.socket()
    probe.settimeout(0.2)
    try:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip("this kernel accepts past a full backlog")
        limits = guarded(
            Resolver(default=["127.0.0.1"]),
            loopback_only("127.0.0.1"),
            connect_timeout_s=0.5,
            timeout_s=5.0,
        )
        url = f"http://media.test:{port}/a.png"
        _refused_within(url, limits, r"could not connect to 'media.test' within 0.5 s", 1.5)
    finally:
        for each in (probe, filler, sock):
            each.close()


@pytest.mark.parametrize("route", ["/trickle-body", "/trickle-slow", "/trickle-headers"])
def test_a_trickling_server_ends_at_the_deadline(server: _Server, route: str) -> None:
    limits = guarded(Resolver(default=["127.0.0.1"]), loopback_only("127.0.0.1"), timeout_s=1.0)
    _refused_within(f"http://media.test:{port_of(server)}{route}", limits, r"within 1 s", 1.6)


def test_an_endless_body_stops_at_the_byte_cap(server: _Server) -> None:
    limits = guarded(
        Resolver(default=["127.0.0.1"]), loopback_only("127.0.0.1"), max_bytes=256 * 1024
    )
    _refused_within(
        f"http://media.test:{port_of(server)}/endless", limits, r"the response is over", 2.0
    )


def test_compressed_responses_are_refused_not_inflated(server: _Server) -> None:
    for limits in (MediaLimits(), MediaLimits(max_bytes=2**20)):
        with pytest.raises(MediaError, match=r"compressed data \(Content-Encoding: gzip\)"):
            fetch_bytes(f"http://127.0.0.1:{port_of(server)}/gzip", limits)


@pytest.mark.parametrize("route", ["/trickle-body", "/trickle-headers"])
def test_deadline_also_holds_without_the_guard(
    server: _Server, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    limits = MediaLimits(timeout_s=1.0)  # local use: no guard, names resolved by the system
    _refused_within(f"http://localhost:{port_of(server)}{route}", limits, "within 1 s", 1.6)


# --------------------------------------------------------------------------- allowed domains


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("media.test", True),
        ("MEDIA.test", True),
        ("media.test.", True),
        ("cdn.example.test", True),
        ("a.b.example.test", True),
        ("example.test", False),
        ("evilexample.test", False),
        ("media.test.evil.example", False),
        ("other.test", False),
    ],
)
def test_allowed_domains(server: _Server, host: str, allowed: bool) -> None:
    resolver = Resolver(default=["127.0.0.1"])
    limits = guarded(
        resolver,
        loopback_only("127.0.0.1"),
        allowed_domains=("media.test", "*.example.test"),
    )
    url = f"http://{host}:{port_of(server)}/image.png"
    if allowed:
        assert fetch_bytes(url, limits) == IMAGE
    else:
        with pytest.raises(MediaError, match="not in the allowed media domains"):
            fetch_bytes(url, limits)
        assert resolver.calls == []  # refused by name, before any lookup


def test_allowed_domains_accept_either_form_of_an_international_name(server: _Server) -> None:
    port = port_of(server)
    for listed in ("münchen.test", "xn--mnchen-3ya.test"):
        limits = guarded(
            Resolver(default=["127.0.0.1"]), loopback_only("127.0.0.1"), allowed_domains=(listed,)
        )
        for host in ("münchen.test", "xn--mnchen-3ya.test"):
            assert fetch_bytes(f"http://{host}:{port}/image.png", limits) == IMAGE


def test_allowed_domains_do_not_bypass_the_address_check(server: _Server) -> None:
    # A listed name that resolves to a private address is still refused ...
    limits = guarded(Resolver(default=["10.0.0.7"]), allowed_domains="media.test, *.cdn.test")
    assert limits.allowed_domains == ("media.test", "*.cdn.test")
    with pytest.raises(MediaError, match="non-public address"):
        fetch_bytes("http://media.test/a.png", limits)
    # ... unless the operator also allows private hosts (an internal media server).
    internal = MediaLimits(allow_private_hosts=True, allowed_domains=("127.0.0.1",))
    assert fetch_bytes(f"http://127.0.0.1:{port_of(server)}/image.png", internal) == IMAGE
    with pytest.raises(MediaError, match="not in the allowed media domains"):
        fetch_bytes(f"http://localhost:{port_of(server)}/image.png", internal)


# --------------------------------------------------------------------------- server defaults


def test_for_server_defaults_and_overrides() -> None:
    limits = MediaLimits.for_server()
    assert limits.allow_local_files is False
    assert limits.allowed_local_dir is None
    assert limits.allow_private_hosts is False
    assert limits.timeout_s == 10.0
    assert limits.connect_timeout_s <= limits.timeout_s
    assert limits.max_redirects == 3
    assert limits.max_video_seconds is not None
    assert limits.max_pixels <= 50_000_000
    tuned = MediaLimits.for_server(timeout_s=2, allowed_domains=["a.test"])
    assert (tuned.timeout_s, tuned.allowed_domains, tuned.allow_private_hosts) == (
        2,
        ("a.test",),
        False,
    )
    with pytest.raises(TypeError):
        MediaLimits.for_server(no_such_field=1)
    assert MediaLimits(allowed_domains=None).allowed_domains == ()  # type: ignore[arg-type]
    local = MediaLimits()  # `sealion-vl chat`: local files and private hosts stay allowed
    assert local.allow_local_files and local.allow_private_hosts


def test_for_server_refuses_local_files_and_data_uris_still_work(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(IMAGE)
    for src in (path, str(path), path.as_uri()):
        with pytest.raises(MediaError, match="local files are not allowed"):
            load_image(src, MediaLimits.for_server())
    assert load_image(IMAGE, MediaLimits.for_server()).size == (32, 16)


def test_is_public_ip_metadata_and_site_local() -> None:
    policy = AddressPolicy()
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "fec0::1", "::8.8.8.8"):
        assert policy.is_public(address) is False, address
    assert policy.is_public("8.8.8.8") is True
    assert policy.is_public(str(ipaddress.ip_address("2606:4700:4700::1111"))) is True


def test_ipv6_literals_and_answers_are_pinned_too() -> None:
    class Server6(_Server):
        address_family = socket.AF_INET6

    try:
        httpd = Server6(("::1", 0), Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    httpd.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = port_of(httpd)
        only_v6_loopback = loopback_only("::1")
        literal = guarded(Resolver(), only_v6_loopback)
        assert fetch_bytes(f"http://[::1]:{port}/image.png", literal) == IMAGE
        named = guarded(Resolver({"v6.test": [["::1"], ["::2"]]}), only_v6_loopback)
        assert fetch_bytes(f"http://v6.test:{port}/image.png", named) == IMAGE
        assert httpd.seen == [  # type: ignore[attr-defined]
            (f"[::1]:{port}", "/image.png"),
            (f"v6.test:{port}", "/image.png"),
        ]
    finally:
        _stop(httpd)
