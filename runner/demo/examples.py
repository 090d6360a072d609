"""The examples in ``manifests/`` and what each needs to run on a bare machine: its sample HR data,
its server, and the variables that point the manifest at them (docs/examples.md has the
convention). A start function makes all of it inside the demo's folder and records in
:class:`Running` what to export and how to stop each server, as it goes: a step that fails leaves
the earlier ones recorded, so they are stopped too.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner import sampledata
from runner.demo import jsonserver, postgresql, scim, soapservice
from runner.demo.process import port_or_free
from runner.demo.process import stop as stop_process
from runner.demo.slapd import Slapd

PEOPLE, GROUPS, SEED = 200, 20, 1  # the committed manifests/data is this sample
BASE_DN = "dc=example,dc=org"


@dataclass
class Server:
    """One server the demo started: ``what`` for a person (with its PID when it is a process of ours),
    ``ending`` what Ctrl-C does to it (``ended`` once done), and how to stop it and tell whether it
    still runs."""

    what: str
    pid: int | None
    stop: Callable[[], None]
    ending: str = "stops it"
    alive: Callable[[], bool] = lambda: True
    log: Path | None = None
    ended: str = ""

    @property
    def done(self) -> str:
        return self.ended or f"stopped {self.what}"


@dataclass
class Running:
    """What a demo made so far: the variables to export (in order) and the servers to stop."""

    env: dict[str, str] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def process(self, name: str, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        """Record a server that is one process (group) of ours."""
        self.servers.append(Server(f"{name} on {url} (pid {process.pid})", process.pid, lambda: stop_process(process),
                                   f"stops {name}", lambda: process.poll() is None, log))


@dataclass(frozen=True)
class Example:
    """One demo: the manifest it runs, the command that runs it, and how to start what it needs."""

    name: str
    manifest: str  # relative to the repository's root
    server: str  # what it starts, for the list ("" for none)
    start: Callable[[Path, int | None, Running], None]
    command: str = "provision run"
    aliases: tuple[str, ...] = ()

    @property
    def next_step(self) -> str:
        if self.command == "provision serve":
            return f"provision serve {self.manifest} --port 8443"
        return f"{self.command} {self.manifest}"


def hr_data(folder: Path, running: Running) -> Path:
    """The sample HR data (CSV files and hr.db, the same people) in ``folder/data``: PROVISION_DATA."""
    data = folder / "data"
    sampledata.make(data, PEOPLE, GROUPS, SEED)
    running.env["PROVISION_DATA"] = str(data)
    running.notes.append(f"sample HR data ({PEOPLE} people, {GROUPS} groups) in {data}")
    return data


def state_file(folder: Path, running: Running) -> None:
    """The state store beside the server it describes: a new server starts with new state."""
    running.env["PROVISION_STATE"] = str(folder / "state.db")


def token() -> str:
    """A throwaway secret for a throwaway server (printed: it guards nothing else)."""
    return secrets.token_hex(16)


# ---- the examples ------------------------------------------------------------------------------------------


def quickstart(folder: Path, port: int | None, running: Running) -> None:
    hr_data(folder, running)
    running.env["PROVISION_TARGET"] = str(folder / "app.db")  # the quickstart keeps its state beside it


def sql(folder: Path, port: int | None, running: Running) -> None:
    data = hr_data(folder, running)
    running.env["HR_DB_URL"] = f"sqlite:///{data / 'hr.db'}"
    running.env["TARGET_DB_URL"] = f"sqlite:///{folder / 'target.db'}"
    state_file(folder, running)


def on_postgresql(folder: Path, port: int | None, running: Running) -> None:
    data = hr_data(folder, running)
    databases = postgresql.start(folder, port)
    cluster = f" and stopped the cluster (pid {databases.pid})" if databases.pid else ""
    running.servers.append(Server(databases.where, databases.pid, databases.drop,
                                  "drops the databases" + (" and stops the cluster" if databases.pid else ""),
                                  ended=f"dropped the demo's databases{cluster}"))
    running.env["HR_DB_URL"] = f"sqlite:///{data / 'hr.db'}"
    running.env["TARGET_DB_URL"] = databases.target_url
    running.env["PROVISION_STATE"] = databases.state_url  # the state store on PostgreSQL too


def ldap_server(folder: Path, port: int | None, running: Running) -> None:
    password = token()
    server = Slapd.start(folder / "slapd", (BASE_DN,), port=port_or_free(port), root_password=password)
    running.servers.append(Server(f"OpenLDAP slapd (pid {server.pid}) on {server.url}", server.pid, server.stop,
                                  "stops slapd", lambda: server.process is not None and server.process.poll() is None,
                                  server.folder / "slapd.log"))
    running.env.update({"LDAP_URL": server.url, "LDAP_BIND_DN": server.root_dn, "LDAP_PASSWORD": password,
                        "LDAP_BASE_DN": BASE_DN})


def ldap(folder: Path, port: int | None, running: Running) -> None:
    hr_data(folder, running)
    state_file(folder, running)
    ldap_server(folder, port, running)


def entra(folder: Path, port: int | None, running: Running) -> None:
    state_file(folder, running)
    ldap_server(folder, port, running)
    running.env["SCIM_ENDPOINT_TOKEN"] = token()
    running.notes.append("Entra (or any SCIM client) provisions into http://127.0.0.1:8443/scim with "
                         "SCIM_ENDPOINT_TOKEN as its bearer token once `provision serve` runs")


def scim_server(folder: Path, port: int | None, running: Running) -> None:
    hr_data(folder, running)
    state_file(folder, running)
    secret, port = token(), port_or_free(port)
    process = scim.start(folder / "scim2-server", port, secret)
    running.process("scim2-server", f"http://127.0.0.1:{port}", process, folder / "scim2-server" / "scim2-server.log")
    running.env.update({"SCIM_URL": f"http://127.0.0.1:{port}", "SCIM_TOKEN": secret})


def rest_server(folder: Path, port: int | None, running: Running) -> None:
    exe = jsonserver.binary()  # before anything is made: a missing json-server is said at once
    hr_data(folder, running)
    state_file(folder, running)
    secret, port = token(), port_or_free(port)
    process = jsonserver.start(folder / "json-server", port, secret, exe=exe)
    running.process("json-server", f"http://127.0.0.1:{port}", process, folder / "json-server" / "json-server.log")
    running.env.update({"REST_URL": f"http://127.0.0.1:{port}", "REST_TOKEN": secret})


def soap_server(folder: Path, port: int | None, running: Running) -> None:
    hr_data(folder, running)
    state_file(folder, running)
    password, port = token(), port_or_free(port)
    process = soapservice.start(folder / "soapservice", port, "provision", password)
    running.process("the SOAP service (spyne)", f"http://127.0.0.1:{port}", process,
                    folder / "soapservice" / "soapservice.log")
    running.env.update({"SOAP_WSDL": f"http://127.0.0.1:{port}/?wsdl", "SOAP_USER": "provision",
                        "SOAP_PASSWORD": password})


EXAMPLES: tuple[Example, ...] = (
    Example("quickstart", "manifests/quickstart.yaml", "", quickstart),
    Example("sql", "manifests/hr-sql-to-sql.yaml", "", sql, aliases=("hr-sql-to-sql",)),
    Example("watermark", "manifests/hr-sql-watermark.yaml", "", sql, aliases=("hr-sql-watermark",)),
    Example("postgresql", "manifests/hr-sql-to-sql.yaml", "a PostgreSQL database", on_postgresql,
            aliases=("postgres", "pg")),
    Example("ldap", "manifests/hr-to-ldap.yaml", "OpenLDAP slapd", ldap, aliases=("hr-to-ldap",)),
    Example("scim", "manifests/hr-to-scim.yaml", "scim2-server", scim_server, aliases=("hr-to-scim",)),
    Example("rest", "manifests/hr-to-rest.yaml", "json-server", rest_server, aliases=("hr-to-rest",)),
    Example("soap", "manifests/hr-to-soap.yaml", "a spyne SOAP service", soap_server, aliases=("hr-to-soap",)),
    Example("entra", "manifests/entra-to-ldap.yaml", "OpenLDAP slapd", entra, command="provision serve",
            aliases=("entra-to-ldap",)),
)


def find(name: str) -> Example | None:
    """The example called ``name`` (or by its manifest's name), None when there is none."""
    wanted = name.strip().lower().removesuffix(".yaml").rsplit("/", 1)[-1]
    return next((e for e in EXAMPLES if wanted == e.name or wanted in e.aliases), None)
