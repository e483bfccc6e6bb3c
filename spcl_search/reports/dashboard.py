"""optuna-dashboard on the study's storage, with the report's figures and tables pushed into it.

:func:`push_report` stores the report's figures that the dashboard does not draw itself as its user-defined plotly graph
objects and its tables as the study note (both live in the study's system attrs, so any
dashboard on the same storage shows them). :func:`start_dashboard` serves optuna-dashboard's WSGI
app from a background thread; :class:`DashboardServer` stops it.

The served app is read-only unless asked otherwise: optuna-dashboard's write endpoints (delete or rename
a study, edit a note, tell a trial...) are every request other than GET/HEAD, and they are refused with
403. Every request must also name the dashboard itself in its ``Host`` header (the bound address, or this
machine's names when bound to all interfaces), so that a web page elsewhere cannot reach it through a
rebinding DNS name.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
from optuna.storages import BaseStorage

from spcl_search.errors import ConfigError
from spcl_search.reports.report import Report, Table
from spcl_search.search.optuna_internals import study_id

#: prefix of the graph-object ids this package writes (so a re-push overwrites them)
GRAPH_PREFIX = "spcl-"
#: the report's figures optuna-dashboard draws itself (history, importance, timeline, Pareto front, contour and
#: slice): not pushed, so that the dashboard shows each once; the others (the gain figure, the methods) are
DASHBOARD_HAS = ("history", "importance", "timeline", "pareto", "landscape")


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class DashboardServer:
    """A running optuna-dashboard; ``url`` is its address."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def study_url(self, study: optuna.Study) -> str:
        """The dashboard page of ``study``."""
        return f"{self.url}/dashboard/studies/{study_id(study)}"

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C stops it)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_dashboard(storage: BaseStorage, host: str = "127.0.0.1", port: int = 8080, *, allow_writes: bool = False) -> DashboardServer:
    """Serve optuna-dashboard on ``storage`` from a daemon thread (``port=0`` picks a free one); read-only unless
    ``allow_writes``, and only to requests whose Host header names it."""
    from optuna_dashboard import wsgi

    guard = _Guard(wsgi(storage), allow_writes=allow_writes)
    try:
        server = make_server(host, port, guard, server_class=_ThreadedServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigError(f"`port` {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    guard.hosts = _allowed_hosts(host, server.server_port)
    thread = threading.Thread(target=server.serve_forever, name="optuna-dashboard", daemon=True)
    thread.start()
    return DashboardServer(host, server.server_port, server, thread)


_Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: methods that only read
READ_METHODS = ("GET", "HEAD")


class _Guard:
    """WSGI middleware: the Host check and, unless writes are allowed, read-only requests only."""

    def __init__(self, app: _Wsgi, *, allow_writes: bool) -> None:
        self.app = app
        self.allow_writes = allow_writes
        self.hosts: frozenset[str] = frozenset()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = str(environ.get("HTTP_HOST", "")).lower()
        if host not in self.hosts:
            return _refuse(start_response, f"Host {host[:100]!r} is not this dashboard's address; open it by the address it printed")
        if not self.allow_writes and environ.get("REQUEST_METHOD", "GET").upper() not in READ_METHODS:
            return _refuse(start_response, "this dashboard is read-only; start it with --allow-writes to change studies from the browser")
        return self.app(environ, start_response)


def _refuse(start_response: Callable[..., Any], reason: str) -> list[bytes]:
    body = (reason + "\n").encode()
    start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def _allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values that name a dashboard bound to ``host``:``port``."""
    names = {host.lower()}
    if host in ("", "0.0.0.0", "::"):
        names = {socket.gethostname().lower(), socket.getfqdn().lower(), "localhost", "127.0.0.1", "[::1]"}
        try:
            names |= {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
    elif host in ("localhost", "127.0.0.1", "::1"):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    names = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names}
    return frozenset({f"{n}:{port}" for n in names} | (names if port == 80 else set()))


def _markdown_table(table: Table) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") or " " for c in cells) + " |"

    lines = [f"**{table.caption}**", ""] if table.caption else []
    header = table.header if any(table.header) else [" "] * len(table.header)
    lines += [row(header), "|" + "---|" * len(header)] + [row(r) for r in table.rows]
    return "\n".join(lines)


def report_note(report: Report) -> str:
    """The report's tables and notices as the Markdown of a study note."""
    parts = [f"# SPCL search report: {report.info.name}", f"_generated {report.generated}_"]
    for section in report.sections:
        if not (section.tables or section.notices) or section.key == "summary":
            continue
        parts.append(f"## {section.title}")
        if section.text:
            parts.append(section.text)
        parts += [f"> {n}" for n in section.notices]
        parts += [_markdown_table(t) for t in section.tables]
    return "\n\n".join(parts)


def push_report(study: optuna.Study, report: Report) -> list[str]:
    """Save the report's figures that optuna-dashboard lacks (not :data:`DASHBOARD_HAS`) as its graph objects and
    the report's tables as the study note; return the graph-object ids."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    ids = []
    for named in report.figures:
        if named.key.split("-")[0] in DASHBOARD_HAS:
            continue
        ids.append(save_plotly_graph_object(study, named.figure, graph_object_id=GRAPH_PREFIX + named.key))
    save_note(study, report_note(report))
    return ids
