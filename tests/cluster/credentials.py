"""The control plane's secrets: a ServiceAccount signing key, static bearer tokens, kubeconfig files."""

from __future__ import annotations

import csv
import dataclasses
import pathlib
import secrets
import shutil
import subprocess

import yaml

from tests.cluster import errors


@dataclasses.dataclass(frozen=True)
class Identity:
    """A user of the static token file (``--token-auth-file``)."""

    user: str
    groups: tuple[str, ...]
    token: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)


def write_service_account_keys(private_key: pathlib.Path, public_key: pathlib.Path) -> None:
    """An EC P-256 key pair (PEM) to sign and verify ServiceAccount tokens; openssl does the maths."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise errors.StartupError("openssl is needed to make the ServiceAccount signing key; install openssl.")
    _run([openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(private_key)])
    _run([openssl, "pkey", "-in", str(private_key), "-pubout", "-out", str(public_key)])
    private_key.chmod(0o600)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise errors.StartupError(f"{' '.join(argv)} failed with code {done.returncode}: {done.stderr.strip()}")


def write_token_file(path: pathlib.Path, identities: list[Identity]) -> None:
    """The CSV of ``--token-auth-file``: ``token,user,uid,"group1,group2"``."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        for identity in identities:
            writer.writerow([identity.token, identity.user, identity.user, ",".join(identity.groups)])
    path.chmod(0o600)


def write_kubeconfig(path: pathlib.Path, *, server: str, ca_file: pathlib.Path, identity: Identity) -> None:
    """A kubeconfig with one cluster, one token user and one current context, all named ``workpath-test``."""
    name = "workpath-test"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": identity.user, "user": {"token": identity.token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": identity.user}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
