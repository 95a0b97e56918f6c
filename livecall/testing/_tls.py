"""A self-signed certificate for 127.0.0.1, for tests and benchmarks that serve ``wss://``."""

import subprocess
from pathlib import Path

__all__ = ["self_signed_certificate"]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """The certificate and key files made in ``folder`` by the ``openssl`` command, valid a day."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
