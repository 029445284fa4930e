"""``edgekit agent serve|token``: the device side of the CLI (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import EdgekitError
from ..interrupts import Interrupted
from .common import fail

agent_app = typer.Typer(help="Run the on-device agent (needs only numpy and ONNX Runtime and/or LiteRT).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``agent`` sub-command group to ``app``."""
    app.add_typer(agent_app, name="agent")


@agent_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; a non-loopback address needs the token."),
    port: int = typer.Option(8765, min=1, max=65535, help="TCP port."),
    store: Path = typer.Option(Path("~/.cache/edgekit/agent").expanduser(), help="Artifact store folder."),
    token_file: Optional[Path] = typer.Option(None, help="Token file (created, mode 0600, if missing). "
                                                         "Default: ~/.config/edgekit/agent-token."),
    no_token: bool = typer.Option(False, "--no-token", help="Disable auth (loopback only)."),
    max_upload_mb: int = typer.Option(512, min=1, help="Largest artifact accepted."),
    memory_limit_mb: int = typer.Option(4096, min=64, help="Address-space limit of each model run."),
    header_timeout_s: float = typer.Option(10.0, min=0.1, max=300, help="Close a connection that has not sent a "
                                                                         "request's headers within this time."),
    max_idle_connections: int = typer.Option(1024, min=1, help="Connections allowed to wait for headers at once; "
                                                              "past it the longest-waiting one is closed."),
    tls: bool = typer.Option(False, "--tls", help="HTTPS on loopback too (off loopback it is the default)."),
    tls_cert: Optional[Path] = typer.Option(None, help="Your own PEM certificate (with --tls-key) instead of the "
                                                       "agent's self-signed one."),
    tls_key: Optional[Path] = typer.Option(None, help="The PEM key of --tls-cert (mode 0600)."),
    insecure_http: bool = typer.Option(False, "--insecure-http", help="Plain HTTP off loopback: the token and "
                                                                      "models cross the network readable."),
    test_hooks: bool = typer.Option(False, "--test-hooks", hidden=True, help="Let requests inject faults."),
) -> None:
    """Serve the agent until interrupted: HTTPS off loopback, with a self-signed certificate made on first start
    beside the token file (`edgekit agent token` prints its fingerprint). Nothing is created (token file, store,
    certificate) before the port is bound."""
    from ..agent.auth import default_token_path, load_or_create_token
    from ..agent.connections import ConnectionLimits
    from ..agent.server import AgentLimits, bind_socket, check_bind
    from ..agent.server import serve as run_server
    from ..agent.store import check_store_location
    from ..agent.storeguard import check_store_ownership
    from ..agent.tls import check_tls_options, server_tls

    try:
        check_bind(host, with_token=not no_token)
        check_tls_options(tls_cert, tls_key, insecure_http)
        check_store_location(store)
        check_store_ownership(store)
        sock = bind_socket(host, port)
    except EdgekitError as error:
        fail(error)
    try:
        token_path = token_file or default_token_path()
        token = None if no_token else load_or_create_token(token_path)
        certificate = server_tls(host, cert=tls_cert, key=tls_key, insecure_http=insecure_http, force_tls=tls,
                                 folder=token_path.parent)
        limits = AgentLimits(max_upload_bytes=max_upload_mb * 1024 * 1024, memory_limit_mb=memory_limit_mb)
        connections = ConnectionLimits(header_timeout_s=header_timeout_s, max_idle_connections=max_idle_connections)
        run_server(sock, store, token, limits, test_hooks, connections, certificate)
    except EdgekitError as error:
        fail(error)
    except Interrupted as stop:
        stop.summary = f"edgekit agent stopped ({stop})"
        raise
    finally:
        sock.close()


@agent_app.command("token")
def show_token(token_file: Optional[Path] = typer.Option(None, help="Token file (created if missing)."),
               tls_cert: Optional[Path] = typer.Option(None, help="The agent's own --tls-cert, if it has one.")) -> None:
    """Print the agent's token and its TLS certificate's fingerprint: save the output on the workstation as its
    --token-file (`ssh pi sudo edgekit agent token ... > pi.token`)."""
    from ..agent.auth import default_token_path
    from ..agent.tls import token_file_text

    try:
        typer.echo(token_file_text(token_file or default_token_path(), tls_cert), nl=False)
    except EdgekitError as error:
        fail(error)


@agent_app.command("install-service")
def install_service(
    dest: Path = typer.Option(Path("/etc/systemd/system"), help="Folder to write edgekit-agent.service into."),
) -> None:
    """Write the hardened systemd unit for this venv's agent (never over a unit edgekit did not write)."""
    from ..agent.service import install_service as write_unit

    try:
        path = write_unit(dest)
    except EdgekitError as error:
        fail(error)
    typer.echo(f"wrote {path}\nnext: sudo systemctl daemon-reload && sudo systemctl enable --now edgekit-agent\n"
               "then: sudo edgekit agent token --token-file /var/lib/edgekit/agent-token  (token and TLS fingerprint)")


@agent_app.command("bundle")
def bundle(
    out: Path = typer.Option(..., help="New folder for the wheelhouse, requirements.txt and install.sh."),
    arch: str = typer.Option("aarch64", help="The device's CPU: aarch64 (64-bit Pi OS) or x86_64."),
    python: str = typer.Option("3.11", help="The device's Python (Pi OS bookworm: 3.11)."),
) -> None:
    """Build an offline install of the agent for a device without internet (run where PyPI is reachable)."""
    from ..agent.bundle import build_bundle

    try:
        folder = build_bundle(out, arch=arch, python=python)
    except EdgekitError as error:
        fail(error)
    wheels = len(list(folder.glob("*.whl")))
    typer.echo(f"wrote {wheels} wheels, requirements.txt and install.sh to {folder}\n"
               f"on the device: copy the folder over, then sudo {folder.name}/install.sh /opt/edgekit/venv")
