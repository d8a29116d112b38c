"""HTTP tools refuse internal destinations by default (SPEC §5.3): loopback, private,
link-local, CGNAT, multicast, unspecified, reserved and cloud metadata addresses — as URL hosts,
as what a name resolves to, on every redirect — and connect to the address they checked."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests.tools._http_server import Received, Reply, open_loopback_server
from vega_trio._redact import redact
from vega_trio.tools import (
    DeclarativeTool,
    HostNotAllowed,
    HttpImplementation,
    HttpToolError,
    ToolDefinitionError,
    ToolParam,
)
from vega_trio.tools._address_policy import classify


def make(url: str, **options: Any) -> DeclarativeTool:
    """An HTTP tool whose URL is ``url`` (it may be ``{{x}}``); one string parameter ``x``."""
    options.setdefault("timeout", 3)
    return DeclarativeTool(
        name="fetch",
        description="Fetch something.",
        params=[ToolParam(name="x", required=False)],
        implementation=HttpImplementation(url=url, **options),
    )


async def call(tool: DeclarativeTool, x: str = "", **to_tool: Any) -> str:
    """Invoke the tool under a real-time guard."""
    with trio.fail_after(10):
        return str(await tool.to_tool(**to_tool).invoke({"x": x}))


def ok(request: Received) -> Reply:
    """A 200 reply that says which Host header arrived."""
    return Reply(body=f"host={request.headers.get('host')}".encode())


class FakeResolver(trio.abc.HostnameResolver):
    """A DNS stand-in for ``trio.socket.getaddrinfo``: each name answers with the next of
    its answer lists (the last one repeats), and every lookup is recorded."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def getaddrinfo(  # type: ignore[override]
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        await trio.lowlevel.checkpoint()
        name = (host or b"").decode("ascii")
        self.calls.append(name)
        if name not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        seen = self.calls.count(name)
        ips = self.answers[name][min(seen, len(self.answers[name])) - 1]
        number = int(port or 0)
        out: list[tuple[Any, ...]] = []
        for ip in ips:
            if ipaddress.ip_address(ip).version == 6:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, number, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, number)))
        return out

    async def getnameinfo(self, sockaddr: Any, flags: int) -> tuple[str, str]:
        raise NotImplementedError


def use_resolver(answers: dict[str, list[list[str]]]) -> FakeResolver:
    """Install a :class:`FakeResolver` for the rest of this Trio run."""
    resolver = FakeResolver(answers)
    trio.socket.set_custom_hostname_resolver(resolver)
    return resolver


# -- the address table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private network"),
        ("172.16.0.1", "private network"),
        ("172.31.255.255", "private network"),
        ("192.168.1.1", "private network"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("fec0::1", "site-local"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "Teredo"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("::ffff:127.0.0.1", "IPv6 form of 127.0.0.1, a loopback"),
        ("::ffff:169.254.169.254", "IPv6 form of 169.254.169.254, a cloud metadata"),
        ("::ffff:0:a00:1", "IPv6 form of 10.0.0.1, a private network"),
        ("::127.0.0.1", "IPv6 form of 127.0.0.1, a loopback"),
        ("64:ff9b::a9fe:a9fe", "IPv6 form of 169.254.169.254, a cloud metadata"),
        ("64:ff9b::7f00:1", "IPv6 form of 127.0.0.1"),
        ("2002:7f00:1::1", "IPv6 form of 127.0.0.1"),
        ("2002:a9fe:a9fe::", "IPv6 form of 169.254.169.254"),
    ],
)
def test_internal_addresses_are_classified(address: str, expected: str) -> None:
    """Every range class (and the IPv6 forms that lead into one) has a reason naming it."""
    reason = classify(ipaddress.ip_address(address))
    assert reason is not None
    assert expected in reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_not_refused(address: str) -> None:
    """Public addresses, next to the refused ranges and in IPv6 forms, are ordinary
    destinations."""
    assert classify(ipaddress.ip_address(address)) is None


# -- URL hosts that are addresses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("10.0.0.1", "private network"),
        ("172.16.5.4", "private network"),
        ("192.168.0.1", "private network"),
        ("169.254.169.254", "cloud metadata"),
        ("100.64.1.1", "carrier-grade NAT"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("[fd00::1]", "unique local"),
        ("[fd00:ec2::254]", "cloud metadata"),
        ("[fe80::1]", "link-local"),
        ("[ff02::1]", "multicast"),
        ("[::]", "unspecified"),
        ("[64:ff9b::a9fe:a9fe]", "cloud metadata"),
    ],
)
async def test_internal_address_hosts_are_refused_before_connecting(
    host: str, expected: str
) -> None:
    """Without allowed_hosts, a URL whose host is an internal address is refused at once,
    with what the address is and how to allow it."""
    with pytest.raises(HostNotAllowed) as caught:
        await call(make(f"http://{host}/latest/meta-data"))
    error = caught.value
    assert expected in error.reason
    assert error.address == str(ipaddress.ip_address(host.strip("[]")))
    message = str(error)
    assert f"http://{host}/latest/meta-data" in message
    assert "The request was not sent" in message
    assert "to allowed_hosts" in message


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost",
        "LocalHost.",
    ],
)
async def test_loopback_in_any_spelling_is_refused(spelling: str) -> None:
    """Loopback written as a name, a legacy numeric form or an IPv6 form is refused; the
    server listening there gets no connection."""
    async with open_loopback_server(ok) as server:
        with pytest.raises(HostNotAllowed) as caught:
            await call(make(f"http://{spelling}:{server.port}/admin"))
        assert server.connections == 0
    assert "loopback" in caught.value.reason


async def test_ipv6_loopback_is_refused_and_allowed_by_name() -> None:
    """``[::1]`` is refused without an allow-list and reached when the list names ``::1``."""
    async with open_loopback_server(ok, host="::1") as server:
        url = f"http://[::1]:{server.port}/"
        with pytest.raises(HostNotAllowed, match=r"'::1' is a loopback address"):
            await call(make(url))
        assert server.connections == 0
        assert await call(make(url, allowed_hosts=["[::1]"])) == f"host=[::1]:{server.port}"


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ips", "expected"),
    [
        ("intranet.test", ["10.0.0.7"], "resolves to 10.0.0.7, a private network"),
        ("meta.test", ["169.254.169.254"], "resolves to 169.254.169.254, a cloud metadata"),
        ("ula.test", ["fd00::1"], "resolves to fd00::1, a unique local"),
        ("mapped.test", ["::ffff:127.0.0.1"], "IPv6 form of 127.0.0.1, a loopback"),
        ("cgnat.test", ["100.64.0.9"], "carrier-grade NAT"),
        ("mixed.test", ["93.184.216.34", "127.0.0.1"], "resolves to 127.0.0.1, a loopback"),
    ],
)
async def test_names_that_resolve_to_internal_addresses_are_refused(
    name: str, ips: list[str], expected: str
) -> None:
    """A name is refused when any address it resolves to is internal (checked once, before
    connecting); the message says what it resolved to and suggests naming the host."""
    resolver = use_resolver({name: [ips]})
    with pytest.raises(HostNotAllowed) as caught:
        await call(make(f"https://{name}/v1"))
    assert resolver.calls == [name]
    message = str(caught.value)
    assert expected in message
    assert f"add the host name '{name}'" in message
    assert caught.value.host == name


@pytest.mark.parametrize(
    "name", ["metadata.google.internal", "metadata.goog", "metadata", "instance-data"]
)
async def test_metadata_names_are_refused_by_name(name: str) -> None:
    """Cloud metadata names are refused before any lookup — with a transport of the caller's
    too, which never sees the request."""
    resolver = use_resolver({})
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, text="token")

    for transport in (None, httpx2.MockTransport(handler)):
        with pytest.raises(HostNotAllowed, match=r"cloud metadata.*credentials") as caught:
            await call(
                make("{{x}}"), f"http://{name}/computeMetadata/v1/", http_transport=transport
            )
        assert caught.value.address is None
    assert resolver.calls == []
    assert seen == []


async def test_literal_addresses_are_checked_with_a_custom_transport() -> None:
    """A transport of the caller's does not skip the checks that need no lookup."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, text="secret")

    tool = make("{{x}}")
    for url in ("http://169.254.169.254/latest", "http://[::ffff:10.0.0.1]/", "http://127.1/"):
        with pytest.raises(HostNotAllowed):
            await call(tool, url, http_transport=httpx2.MockTransport(handler))
    assert seen == []
    assert await call(tool, "https://api.test/", http_transport=httpx2.MockTransport(handler))


async def test_url_without_host_is_an_error() -> None:
    """``http:///etc/passwd`` names no host: an error saying so, no lookup."""
    resolver = use_resolver({})
    with pytest.raises(HttpToolError, match=r"has no host"):
        await call(make("{{x}}"), "http:///etc/passwd")
    assert resolver.calls == []


# -- the allow-list --------------------------------------------------------------------------


async def test_allow_list_forms_reach_internal_servers() -> None:
    """An exact name allows whatever it resolves to; an address or network allows the
    address; a port limits an entry; a wildcard alone allows no internal address."""
    use_resolver({"svc.test": [["127.0.0.1"]], "localhost": [["127.0.0.1"]]})
    async with open_loopback_server(ok) as server:
        port = server.port
        reached = [
            await call(make(f"http://localhost:{port}/", allowed_hosts=["localhost"])),
            await call(make(f"http://127.0.0.1:{port}/", allowed_hosts=["127.0.0.0/8"])),
            await call(make(f"http://127.0.0.1:{port}/", allowed_hosts=[f"127.0.0.1:{port}"])),
            await call(make(f"http://svc.test:{port}/", allowed_hosts=["svc.test"])),
            await call(make(f"http://svc.test:{port}/", allowed_hosts=["*.test", "127.0.0.1"])),
        ]
        with pytest.raises(HostNotAllowed, match=r"its allowed hosts are: '127.0.0.1:1'"):
            await call(make(f"http://127.0.0.1:{port}/", allowed_hosts=["127.0.0.1:1"]))
        with pytest.raises(HostNotAllowed, match=r"resolves to 127.0.0.1, a loopback"):
            await call(make(f"http://svc.test:{port}/", allowed_hosts=["*.test"]))
        with pytest.raises(HostNotAllowed, match=r"its allowed hosts are: '127.0.0.0/8'"):
            await call(make(f"http://localhost:{port}/", allowed_hosts=["127.0.0.0/8"]))
        assert server.connections == len(reached)
    assert reached == [
        f"host=localhost:{port}",
        f"host=127.0.0.1:{port}",
        f"host=127.0.0.1:{port}",
        f"host=svc.test:{port}",
        f"host=svc.test:{port}",
    ]


@pytest.mark.parametrize(
    ("entry", "normalized"),
    [
        ("API.Example.COM.", "api.example.com"),
        ("[::1]", "::1"),
        ("[0:0::1]:8080", "[::1]:8080"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("FD00::/8", "fd00::/8"),
        ("*.example.com:443", "*.example.com:443"),
        ("localhost:8080", "localhost:8080"),
    ],
)
def test_allow_list_entries_are_normalized(entry: str, normalized: str) -> None:
    """Names, addresses, networks and ports are stored in one spelling."""
    assert HttpImplementation(url="https://x.test/", allowed_hosts=[entry]).allowed_hosts == (
        normalized,
    )


@pytest.mark.parametrize(
    "entry",
    ["https://x.test/", "x.test/path", "10.0.0.1/8", "10.0.0.0/8:80", "x.test:0", "a b", "[::1"],
)
def test_invalid_allow_list_entries_are_definition_errors(entry: str) -> None:
    """An entry that is no name, wildcard, address or network (with an optional port) is
    refused when the tool is defined."""
    with pytest.raises(ToolDefinitionError, match=r"allowed host .*write a host name"):
        HttpImplementation(url="https://x.test/", allowed_hosts=[entry])


# -- redirects -------------------------------------------------------------------------------


async def test_redirect_to_a_metadata_address_is_refused() -> None:
    """A redirect from an allowed server to a name resolving to the metadata service (or to
    the metadata address itself) is refused before that hop connects."""
    use_resolver({"meta.test": [["169.254.169.254"]]})
    targets = iter(["http://meta.test/latest/meta-data/", "http://169.254.169.254/latest/"])

    def handler(request: Received) -> Reply:
        return Reply(status=302, headers=(("location", next(targets)),))

    async with open_loopback_server(handler) as server:
        tool = make(
            f"{server.url}/start", allowed_hosts=["127.0.0.1", "*.test"], follow_redirects=True
        )
        with pytest.raises(HostNotAllowed) as by_name:
            await call(tool)
        with pytest.raises(HostNotAllowed) as by_address:
            await call(tool)
    assert "cloud metadata" in by_name.value.reason
    assert f"(a redirect from {server.url}/start)" in str(by_name.value)
    assert by_address.value.host == "169.254.169.254"
    assert [r.target for r in server.requests] == ["/start", "/start"]


async def test_redirect_to_another_port_outside_the_allow_list_is_refused() -> None:
    """``127.0.0.1:<port>`` allows that port only: a redirect to another loopback port is
    refused and that server gets no connection."""
    async with open_loopback_server(ok) as other:

        def handler(request: Received) -> Reply:
            return Reply(status=307, headers=(("location", f"{other.url}/admin"),))

        async with open_loopback_server(handler) as server:
            tool = make(
                f"{server.url}/start",
                allowed_hosts=[f"127.0.0.1:{server.port}"],
                follow_redirects=True,
            )
            with pytest.raises(HostNotAllowed, match=r"may not call host '127.0.0.1'"):
                await call(tool)
    assert other.connections == 0
    assert len(server.requests) == 1


async def test_redirect_to_another_scheme_is_refused() -> None:
    """Only http and https are followed."""
    reply = Reply(status=302, headers=(("location", "file:///etc/passwd"),))
    async with open_loopback_server(lambda r: reply) as server:
        tool = make(f"{server.url}/", allowed_hosts=["127.0.0.1"], follow_redirects=True)
        with pytest.raises(HttpToolError, match=r"file:/+etc/passwd .* not an http:// or https"):
            await call(tool)


async def test_redirects_are_limited() -> None:
    """A redirect loop ends after MAX_REDIRECTS hops with an error saying so."""
    reply = Reply(status=302, headers=(("location", "/again"),))
    async with open_loopback_server(lambda r: reply) as server:
        tool = make(f"{server.url}/", allowed_hosts=["127.0.0.1"], follow_redirects=True)
        with pytest.raises(HttpToolError, match=r"redirected more than 10 times"):
            await call(tool)
    assert len(server.requests) == 11


async def test_redirect_keeps_credentials_at_their_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same origin: every header goes along. Another origin: Authorization and the headers
    that read the environment stay behind; a 303 turns a POST into a GET without body."""
    monkeypatch.setenv("VEGA_TEST_KEY", "key-1234567")
    async with open_loopback_server(ok) as other:

        def handler(request: Received) -> Reply:
            if request.target == "/first":
                return Reply(status=307, headers=(("location", "/second"),))
            return Reply(status=303, headers=(("location", f"{other.url}/third"),))

        async with open_loopback_server(handler) as server:
            tool = make(
                f"{server.url}/first",
                method="POST",
                body={"q": "{{x}}"},
                headers={"Authorization": "Bearer abcdefgh", "X-Key": "${VEGA_TEST_KEY}"},
                allowed_hosts=["127.0.0.1"],
                follow_redirects=True,
            )
            assert await call(tool, "hi") == f"host=127.0.0.1:{other.port}"
    first, second = server.requests
    assert (first.method, second.method) == ("POST", "POST")
    assert second.body == b'{"q": "hi"}'
    assert second.headers["x-key"] == "key-1234567"
    assert second.headers["authorization"] == "Bearer abcdefgh"
    (third,) = other.requests
    assert (third.method, third.body) == ("GET", b"")
    assert "x-key" not in third.headers
    assert "authorization" not in third.headers
    assert "content-type" not in third.headers


# -- DNS rebinding ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["allowed-first", "refused-first"])
async def test_the_checked_address_is_the_one_connected_to(order: str) -> None:
    """The name is resolved once, the answer is checked and the connection goes to that
    address: a resolver that answers differently on a later lookup (DNS rebinding) can't
    move the request to an unchecked address."""
    async with open_loopback_server(ok) as allowed:
        async with open_loopback_server(ok, host="127.0.0.2", port=allowed.port) as refused:
            answers = [["127.0.0.1"], ["127.0.0.2"]]
            if order == "refused-first":
                answers.reverse()
            resolver = use_resolver({"rebind.test": answers})
            tool = make(
                f"http://rebind.test:{allowed.port}/", allowed_hosts=["*.test", "127.0.0.1"]
            )
            if order == "allowed-first":
                assert await call(tool) == f"host=rebind.test:{allowed.port}"
                assert allowed.connections == 1
            else:
                with pytest.raises(HostNotAllowed, match=r"resolves to 127.0.0.2"):
                    await call(tool)
                assert allowed.connections == 0
            assert refused.connections == 0
            assert resolver.calls == ["rebind.test"]


# -- credentials in headers ------------------------------------------------------------------


async def test_header_values_from_the_environment_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``${VAR}`` a header reads is registered as a secret, whatever the variable's name."""
    monkeypatch.setenv("VEGA_TEST_PLAIN", "plain-credential-42")
    async with open_loopback_server(ok) as server:
        tool = make(
            f"{server.url}/",
            headers={"X-Api": "v=${VEGA_TEST_PLAIN}"},
            allowed_hosts=["127.0.0.1"],
        )
        await call(tool)
    assert server.requests[0].headers["x-api"] == "v=plain-credential-42"
    assert redact("the server said: plain-credential-42") == "the server said: ***"


# -- TLS keeps the host name -----------------------------------------------------------------


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for the DNS name ``name``, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
            "-addext", f"subjectAltName=DNS:{name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("certified", ["secure.test", "other.test"])
async def test_https_to_the_checked_address_keeps_sni_and_certificate_check(
    certified: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the resolved IP, but TLS sends the URL's host name (SNI) and
    verifies the certificate against it: a certificate for another name is rejected."""
    cert, key = _certificate(tmp_path, certified)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,func-returns-value]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    use_resolver({"secure.test": [["127.0.0.1"]]})
    async with open_loopback_server(ok, ssl_context=server_context) as server:
        tool = make(f"https://secure.test:{server.port}/", allowed_hosts=["secure.test"])
        if certified == "secure.test":
            assert await call(tool) == f"host=secure.test:{server.port}"
        else:
            with pytest.raises(HttpToolError, match=r"certificate is not valid for 'secure.test'"):
                await call(tool)
    assert names == ["secure.test"]
