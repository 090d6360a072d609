"""A throwaway OpenLDAP slapd (slapd 2.5 as Debian 12 packages it), for ``provision demo ldap`` and the
tests.

``Slapd.start(folder)`` writes a cn=config into ``folder``, loads it with ``slapadd``, adds the
base entries, and runs ``slapd -d 0`` on 127.0.0.1 (a free port, or ``port``) and on an ldapi
socket inside ``folder``; ``stop()`` ends it by its PID. Each suffix (naming context) is an mdb
database with the overlays a production directory has: syncprov, accesslog (writes, successful
ones, into ``cn=accesslog``), memberof (groupOfNames/member) and refint (member, uniqueMember).
The root DN may read and page without limits; the process's own user, bound with SASL EXTERNAL
over ldapi, is mapped to the root DN. ``tls=True`` makes a CA and a server certificate with
``openssl`` and listens on ldaps too (and accepts StartTLS on ldap).

Used by ``provision demo ldap`` (:mod:`runner.demo.examples`), the pytest fixtures (through
``tests/servers/slapd.py``) and ``bench/ldap_export.py``. Needs Debian's ``slapd`` and
``ldap-utils``; a missing binary is :class:`SlapdMissing`, saying what to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from runner.demo.process import NotInstalled, free_port

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
MODULES = Path("/usr/lib/ldap")
SCHEMAS = Path("/etc/ldap/schema")
ROOT_PASSWORD = "slapd-root-secret"  # a throwaway server's default; never a real secret
DEFAULT_SUFFIXES = ("dc=example,dc=org", "dc=other,dc=org")


class SlapdMissing(NotInstalled):
    """slapd or its tools are not installed."""


def _database(index: int, suffix: str, root_dn: str, *, accesslog: bool, refint: bool = True,
              root_password: str = ROOT_PASSWORD) -> str:
    lines = [
        f"dn: olcDatabase={{{index}}}mdb,cn=config", "objectClass: olcDatabaseConfig", "objectClass: olcMdbConfig",
        f"olcDatabase: {{{index}}}mdb", f"olcSuffix: {suffix}", f"olcRootDN: {root_dn}",
        # the root DN's password lives in the database that holds it; in the others it is root by identity
        *([f"olcRootPW: {root_password}"] if root_dn.lower().endswith(suffix.lower()) else []),
        "olcDbDirectory: {dir}", "olcDbNoSync: TRUE", "olcDbMaxSize: 4294967296",
        "olcDbIndex: objectClass eq", "olcDbIndex: entryUUID eq", "olcDbIndex: entryCSN eq",
        "olcDbIndex: uid,cn,mail,employeeNumber eq", "olcDbIndex: member eq", "olcDbIndex: modifyTimestamp eq",
        f'olcLimits: dn.exact="{root_dn}" size=unlimited time=unlimited',
        "olcSizeLimit: unlimited",
        "olcAccess: to attrs=userPassword by self write by anonymous auth by * none",
        "olcAccess: to * by * read",
        "",
    ]
    overlays = [
        ("syncprov", ["objectClass: olcSyncProvConfig", "olcSpCheckpoint: 100 10"]),
        ("memberof", ["objectClass: olcMemberOf", "olcMemberOfGroupOC: groupOfNames", "olcMemberOfMemberAD: member",
                      "olcMemberOfMemberOfAD: memberOf", "olcMemberOfRefint: TRUE"]),
        ("refint", ["objectClass: olcRefintConfig", "olcRefintAttribute: member", "olcRefintAttribute: uniqueMember"]),
    ]
    if not refint:  # a directory that leaves DN references to a renamed entry as they were
        overlays = [o for o in overlays if o[0] != "refint"]
        overlays[-1][1][-1] = "olcMemberOfRefint: FALSE"
    if accesslog:
        overlays.insert(1, ("accesslog", ["objectClass: olcAccessLogConfig", "olcAccessLogDB: cn=accesslog",
                                          "olcAccessLogOps: writes", "olcAccessLogSuccess: TRUE"]))
    for n, (name, body) in enumerate(overlays):
        lines += [f"dn: olcOverlay={{{n}}}{name},olcDatabase={{{index}}}mdb,cn=config",
                  "objectClass: olcOverlayConfig", *body, f"olcOverlay: {{{n}}}{name}", ""]
    return "\n".join(lines)


def config_ldif(folder: Path, suffixes: tuple[str, ...], root_dn: str, *, accesslog: bool,
                tls: tuple[Path, Path, Path] | None, refint: bool = True,
                root_password: str = ROOT_PASSWORD) -> str:
    uid, gid = os.getuid(), os.getgid()
    parts = [
        "dn: cn=config", "objectClass: olcGlobal", "cn: config", f"olcPidFile: {folder}/slapd.pid",
        f"olcArgsFile: {folder}/slapd.args", "olcLogLevel: none",
        # the process's own user over ldapi (SASL EXTERNAL) is the root DN
        f'olcAuthzRegexp: "gidNumber={gid}\\+uidNumber={uid},cn=peercred,cn=external,cn=auth" "{root_dn}"',
    ]
    if tls:
        ca, cert, key = tls
        parts += [f"olcTLSCACertificateFile: {ca}", f"olcTLSCertificateFile: {cert}",
                  f"olcTLSCertificateKeyFile: {key}"]
    parts += ["",
              "dn: cn=module{0},cn=config", "objectClass: olcModuleList", "cn: module{0}", f"olcModulePath: {MODULES}",
              "olcModuleLoad: back_mdb", "olcModuleLoad: accesslog", "olcModuleLoad: syncprov",
              "olcModuleLoad: memberof", "olcModuleLoad: refint", "olcModuleLoad: pw-sha2", "",
              "dn: cn=schema,cn=config", "objectClass: olcSchemaConfig", "cn: schema", ""]
    for schema in ("core", "cosine", "nis", "inetorgperson"):
        parts.append((SCHEMAS / f"{schema}.ldif").read_text())
    parts += ["dn: olcDatabase={-1}frontend,cn=config", "objectClass: olcDatabaseConfig",
              "objectClass: olcFrontendConfig", "olcDatabase: {-1}frontend", "olcSizeLimit: unlimited", "",
              "dn: olcDatabase={0}config,cn=config", "objectClass: olcDatabaseConfig", "olcDatabase: {0}config",
              f"olcRootDN: {root_dn}", ""]
    index = 1
    if accesslog:
        parts += ["dn: olcDatabase={1}mdb,cn=config", "objectClass: olcDatabaseConfig", "objectClass: olcMdbConfig",
                  "olcDatabase: {1}mdb", "olcSuffix: cn=accesslog", f"olcRootDN: {root_dn}",
                  f"olcDbDirectory: {folder}/db-accesslog", "olcDbNoSync: TRUE", "olcDbMaxSize: 4294967296",
                  "olcDbIndex: default eq", "olcDbIndex: entryCSN,objectClass,reqEnd,reqResult,reqStart,reqDN",
                  f'olcLimits: dn.exact="{root_dn}" size=unlimited time=unlimited', "olcSizeLimit: unlimited",
                  "olcAccess: to * by * read", ""]
        index = 2
    for n, suffix in enumerate(suffixes):
        parts.append(_database(index + n, suffix, root_dn, accesslog=accesslog, refint=refint,
                               root_password=root_password)
                     .replace("{dir}", str(folder / f"db-{n}")))
    return "\n".join(parts) + "\n"


def base_ldif(suffix: str) -> str:
    """The suffix entry: a domain component (dc=...) or an organization (o=...)."""
    attr, _, value = suffix.split(",")[0].partition("=")
    if attr.lower() == "dc":
        return f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: {value}\no: {value}\n"
    return f"dn: {suffix}\nobjectClass: organization\no: {value}\n"


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost, made with openssl: (ca, cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
            "-subj", "/CN=provision test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@dataclass
class Slapd:
    """One running slapd: where it listens, its root DN and password, and its PID."""

    folder: Path
    suffixes: tuple[str, ...]
    port: int
    root_dn: str
    root_password: str = ROOT_PASSWORD
    tls_port: int | None = None
    ca_file: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        assert self.tls_port, "started without tls=True"
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def socket_path(self) -> Path:
        return self.folder / "ldapi"

    @property
    def ldapi_url(self) -> str:
        return "ldapi://" + urllib.parse.quote(str(self.socket_path), safe="")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @classmethod
    def start(cls, folder: Path, suffixes: tuple[str, ...] = DEFAULT_SUFFIXES, *, accesslog: bool = True,
              tls: bool = False, root_dn: str | None = None, preload: Path | None = None,
              refint: bool = True, port: int | None = None, root_password: str = ROOT_PASSWORD) -> Slapd:
        """Make and run a server; ``preload`` is an LDIF of entries below the first suffix, loaded
        offline with ``slapadd -q`` (100,000 entries in seconds, where adds take minutes).
        ``refint=False``: without the refint overlay, as many directories run (member DNs stay
        as they were when their entry is renamed). ``port``: the LDAP port (default a free one)."""
        if not (Path(SLAPD).exists() and Path(SLAPADD).exists()):
            raise SlapdMissing("OpenLDAP's slapd is not installed: apt-get install slapd ldap-utils "
                               "(Debian, Ubuntu; scripts/test installs them)")
        folder.mkdir(parents=True, exist_ok=True)
        root_dn = root_dn or f"cn=admin,{suffixes[0]}"
        certificates = make_certificates(folder / "tls") if tls else None
        for n in range(len(suffixes)):
            (folder / f"db-{n}").mkdir(exist_ok=True)
        if accesslog:
            (folder / "db-accesslog").mkdir(exist_ok=True)
        (folder / "slapd.d").mkdir(exist_ok=True)
        (folder / "config.ldif").write_text(config_ldif(folder, suffixes, root_dn, accesslog=accesslog,
                                                        tls=certificates, refint=refint,
                                                        root_password=root_password))
        _run([SLAPADD, "-n", "0", "-F", str(folder / "slapd.d"), "-l", str(folder / "config.ldif")])
        for suffix in suffixes:
            (folder / "base.ldif").write_text(base_ldif(suffix))
            _run([SLAPADD, "-F", str(folder / "slapd.d"), "-b", suffix, "-l", str(folder / "base.ldif")])
        if preload is not None:
            _run([SLAPADD, "-q", "-F", str(folder / "slapd.d"), "-b", suffixes[0], "-l", str(preload)])
        server = cls(folder, tuple(suffixes), port or free_port(), root_dn, root_password,
                     tls_port=free_port() if tls else None, ca_file=certificates[0] if certificates else None)
        server.run()
        return server

    def run(self) -> None:
        """Start (or start again, on the same ports and data) and wait until it answers."""
        urls = [f"ldap://127.0.0.1:{self.port}/", self.ldapi_url + "/"]
        if self.tls_port:
            urls.append(f"ldaps://127.0.0.1:{self.tls_port}/")
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log = open(self.folder / "slapd.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen([SLAPD, "-d", "0", "-F", str(self.folder / "slapd.d"), "-h", " ".join(urls)],
                                        stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}: "
                                   f"{(self.folder / 'slapd.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("slapd did not start listening within 15 s")

    def stop(self) -> None:
        """End the server by its PID (SIGTERM, then SIGKILL), and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the server dies mid-operation, as a crash would do it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.run()


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
