"""Serving over TLS (``--listen ssl:...``) and the warning for clear text beyond loopback."""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any

import pytest
import pytest_twisted
import treq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.logger import globalLogPublisher

from loopdash.server.exposure import endpoint_fields, exposure_warning, is_loopback
from loopdash.server.service import build_dashboard, tcp_endpoint
from loopdash.server.tap import Options
from tests.conftest import DaemonFactory
from tests.support import EventStream


def self_signed(directory: str) -> tuple[str, str, bytes]:
    """A key and a self-signed certificate for localhost and 127.0.0.1: (key path, cert path, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(directory, "key.pem")
    cert_path = os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    with open(cert_path, "wb") as f:
        f.write(pem)
    return key_path, cert_path, pem


def https_client(pem: bytes) -> Any:
    """treq trusting only our certificate."""
    from twisted.internet import reactor
    from twisted.internet.ssl import Certificate
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

    policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(pem))
    return treq.client.HTTPClient(Agent(reactor, contextFactory=policy))


@pytest_twisted.ensureDeferred
async def test_the_api_and_the_stream_are_served_over_tls(
    daemon_factory: DaemonFactory, sample_root: str, tmp_path: Any
) -> None:
    key, cert, pem = self_signed(str(tmp_path))
    listen = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    daemon = await daemon_factory(sample_root, listen=listen)
    port = int(daemon.url.rsplit(":", 1)[1])
    daemon.url = f"https://127.0.0.1:{port}"
    client = https_client(pem)
    health = await client.get(daemon.url + "/api/health")
    assert health.code == 200
    assert (await health.json())["status"] == "ok"
    status = await client.get(daemon.url + "/api/status", headers=daemon.auth())
    assert status.code == 200
    assert (await status.json())["total_stories"] == 8
    refused = await client.get(daemon.url + "/api/status", headers={"Authorization": "Bearer wrong"})
    assert refused.code == 403
    await refused.content()
    # The stream over TLS: the first events arrive as on plain HTTP.
    response = await client.get(daemon.url + "/api/stream", headers=daemon.auth(), unbuffered=True)
    stream = EventStream(response)
    response.deliverBody(stream)
    assert (await stream.next_of_type("connected")).type == "connected"
    assert (await stream.next_of_type("status_update")).data["data"]["total_stories"] == 8
    stream.close()


@pytest_twisted.ensureDeferred
async def test_a_client_that_does_not_trust_the_certificate_is_refused(
    daemon_factory: DaemonFactory, sample_root: str, tmp_path: Any
) -> None:
    key, cert, _ = self_signed(str(tmp_path))
    other = os.path.join(str(tmp_path), "other")
    os.makedirs(other)
    _, _, other_pem = self_signed(other)
    daemon = await daemon_factory(
        sample_root, listen=f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    )
    port = int(daemon.url.rsplit(":", 1)[1])
    with pytest.raises(Exception) as failed:
        await https_client(other_pem).get(f"https://127.0.0.1:{port}/api/health")
    assert "certificate verify failed" in repr(failed.value) or "SSL" in repr(failed.value)
    # A plain-HTTP request to the TLS port gets no answer in clear text.
    with pytest.raises(Exception):  # noqa: B017 (treq's error differs by Twisted version)
        response = await treq.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
        await response.content()


# -- the warning for clear text beyond loopback -------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "warned"),
    [
        (tcp_endpoint(8080, "127.0.0.1"), False),
        (tcp_endpoint(8080, "::1"), False),
        (tcp_endpoint(8080, "localhost"), False),
        ("tcp:8080:interface=127.0.0.53", False),
        (tcp_endpoint(8080, "0.0.0.0"), True),
        (tcp_endpoint(8080, "::"), True),
        (tcp_endpoint(8080, "192.168.1.20"), True),
        (tcp_endpoint(8080, "dashboard.example"), True),
        ("tcp:8080", True),
        ("tcp6:port=8080:interface=\\:\\:", True),
        ("ssl:8443:privateKey=k.pem:certKey=c.pem:interface=0.0.0.0", False),
        ("ssl:8443:privateKey=k.pem", False),
        ("unix:/run/loopdash.sock", False),
    ],
)
def test_only_clear_text_beyond_loopback_is_warned_about(listen: str, warned: bool) -> None:
    warning = exposure_warning(listen)
    assert (warning is not None) == warned
    if warning is not None:
        assert "TLS" in warning and "--listen ssl:" in warning


def test_endpoint_strings_are_split_with_escaped_colons() -> None:
    assert endpoint_fields("tcp:8080:interface=\\:\\:1") == ("tcp", ["8080"], {"interface": "::1"})
    assert is_loopback("[::1]") and not is_loopback("") and not is_loopback("0.0.0.0")


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_binding_beyond_loopback_logs_the_warning_at_start(tmp_path: Any, host: str) -> None:
    from twisted.internet import reactor

    root = os.path.join(str(tmp_path), "p")
    os.makedirs(root)
    options = Options()
    options.parseOptions(["--root", root, "--host", host, "--port", "0"])
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        build_dashboard(options.config(), reactor)  # built, never started: nothing listens
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if "TLS" in str(e.get("warning", ""))]
    assert len(warnings) == (1 if host == "0.0.0.0" else 0)
    if warnings:
        assert warnings[0]["log_level"].name == "warn"
        assert "every interface" not in warnings[0]["warning"]  # it names the interface
        assert "0.0.0.0" in warnings[0]["warning"]
