"""The HTTPS server around SimApp, and the public Simulator object."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import ssl
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .app import DROP, SimApp
from .generate import DEMO_REMEDIATION_APP_ID, demo_domains
from .limits import Counters, FaultSpec, Limits
from .odata import Response
from .pki import make_server_pki

log = logging.getLogger("audit.simulator")
OnResponse = Callable[[str, str, bytes, Response], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "etd-audit-simulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections end after this

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's signature
        log.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            result = server.app.handle(self.command, self.path, headers, body)
        except Exception:  # a simulator bug: answer 500 rather than hang up
            log.exception("simulator failed on %s %s", self.command, self.path.split("?")[0])
            result = Response.text(500, "simulator error")
        if result is DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        response: Response = result
        if server.on_response is not None:
            server.on_response(self.command, self.path, body, response)
        server.app.counters.status(response.status)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if not any(k.lower() == "request-id" for k in response.headers):
            request_id = str(uuid.uuid4())
            self.send_header("request-id", request_id)
            self.send_header("client-request-id", headers.get("client-request-id") or request_id)
        self._headers_buffer.append(b"\r\n" + response.body)  # headers and body in one write
        self.flush_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app: SimApp, context: ssl.SSLContext, on_response: OnResponse | None = None) -> None:
        super().__init__(address, _Handler)
        self.app, self.context, self.on_response = app, context, on_response
        self.open_sockets: set[ssl.SSLSocket] = set()
        self.sockets_lock = threading.Lock()

    def finish_request(self, request, client_address) -> None:
        """TLS handshake in the connection's own thread, so a slow client never blocks accept()."""
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            log.debug("TLS handshake failed: %s", err)
            return
        with self.sockets_lock:
            self.open_sockets.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError) as err:
            log.debug("connection error: %s", err)
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(tls)
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        log.debug("unhandled error serving %s", client_address, exc_info=True)

    def close_all(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Simulator:
    """A local Microsoft Graph + Entra token endpoint over HTTPS, serving several tenants at once.

    Use as a context manager or call start()/stop(). `url` is both the authority host and the Graph
    endpoint; clients trust `ca_path`. `counters` and `sent_mail` record what happened. `on_response`,
    when given, is called with (method, path with query, request body, Response) for every answer sent
    (the contract tests record what the audit received with it).
    """

    def __init__(
        self,
        tenants: list[dict],
        *,
        faults: FaultSpec | str | None = None,
        limits: Limits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_response: OnResponse | None = None,
    ) -> None:
        if isinstance(faults, str):
            faults = FaultSpec.parse(faults)
        self.tenants = tenants
        self.faults = faults or FaultSpec()
        self.limits = limits
        self.host, self.port = host, port
        self.on_response = on_response
        self.app = SimApp(tenants, self.faults, limits)
        self._dir = Path(tempfile.mkdtemp(prefix="etd-sim-"))
        weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        self.ca_path = self._dir / "ca.pem"
        self.url = ""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def counters(self) -> Counters:
        return self.app.counters

    @property
    def sent_mail(self) -> list[dict]:
        return self.app.sent_mail

    def start(self) -> Simulator:
        if self._server is not None:
            return self
        pki = make_server_pki(self.host)
        self.ca_path.write_text(pki.ca_pem)
        cert_file, key_file = self._dir / "server.pem", self._dir / "server.key"
        cert_file.write_text(pki.cert_pem)
        key_file.write_text(pki.key_pem)
        key_file.chmod(0o600)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        self._server = _Server((self.host, self.port), self.app, context, self.on_response)
        self.port = self._server.server_address[1]
        self.url = f"https://{self.host}:{self.port}"
        self.app.url = self.url
        serve = self._server.serve_forever
        self._thread = threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, name="etd-sim", daemon=True)
        self._thread.start()
        log.debug("simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------- helpers
    def tenant(self, key: str) -> dict:
        """A tenant spec by name, id or verified domain."""
        state = self.app.resolve_tenant(key) or next((t for t in self.app.tenants if t.name == key), None)
        if state is None:
            raise KeyError(key)
        return state.spec

    def federated_token(self, **claims) -> str:
        """A token as the cluster's issuer would mount it for the pod (see workload.WorkloadIdentity.mint)."""
        return self.app.workload.mint(self.url, **claims)

    def managed_identity_env(self) -> dict[str, str]:
        """The variables App Service and Container Apps set for msal's managed-identity client."""
        return {
            "IDENTITY_ENDPOINT": self.url + "/msi/token",
            "IDENTITY_HEADER": self.app.workload.identity_header,
        }

    @staticmethod
    def secret_env_name(tenant_name: str) -> str:
        return "ETD_SIM_SECRET_" + re.sub(r"[^A-Z0-9]", "_", tenant_name.upper())

    def secrets_env(self) -> dict[str, str]:
        """Environment variables named by config_toml(), each holding a tenant's client secret."""
        return {self.secret_env_name(t["name"]): t["clients"][0]["secret"] for t in self.tenants if t.get("clients")}

    def config_toml(
        self, out_dir: str = "reports", access_policy_file: str | None = None, exports: dict[str, str] | None = None
    ) -> str:
        """A ready etd-audit configuration pointing at this simulator (secrets come from secrets_env())."""
        if not self.url:
            raise RuntimeError("start the simulator first: its URL is part of the configuration")

        def q(value: str) -> str:
            return json.dumps(str(value))

        lines: list[str] = []
        for tenant in self.tenants:
            if not tenant.get("clients"):
                continue
            lines += [
                "[[tenants]]",
                f"name = {q(tenant['name'])}",
                f"tenant_id = {q(tenant['tenant_id'])}",
                f"client_id = {q(tenant['clients'][0]['client_id'])}",
                f"client_secret_env = {q(self.secret_env_name(tenant['name']))}",
                f"authority_host = {q(self.url)}",
                f"graph_endpoint = {q(self.url)}",
                "domains = [" + ", ".join(q(d) for d in demo_domains(tenant)) + "]",
                "",
            ]
        home = next(
            (
                t
                for t in self.tenants
                if any(a.get("appId") == DEMO_REMEDIATION_APP_ID for a in t.get("applications", []))
            ),
            None,
        )
        lines += ["[remediation_app]", f"app_id = {q(DEMO_REMEDIATION_APP_ID)}"]
        if home:
            lines.append(f"home_tenant_id = {q(home['tenant_id'])}")
        if access_policy_file:
            lines.append(f"access_policy_file = {q(access_policy_file)}")
        for key, path in (exports or {}).items():  # [remediation_app] key -> export file (audit.demo.write_exports)
            if key != "access_policy_file" or not access_policy_file:
                lines.append(f"{key} = {q(path)}")
        lines += ["", "[audit]", f"out_dir = {q(out_dir)}", f"ca_bundle = {q(self.ca_path)}", ""]
        return "\n".join(lines)
