"""``ldap``: a directory (OpenLDAP, 389-DS, AD LDS...) over LDAPv3, with ldap3.

Configuration (a connector block of a provision manifest)::

    directory:
      type: ldap
      url: ldaps://ldap.example.org        # ldap://, ldaps:// or ldapi:// (a socket path, URL-encoded)
      bind_dn: cn=provision,dc=example,dc=org
      password: ${env:LDAP_PASSWORD}       # or sasl: EXTERNAL (ldapi://, a client certificate)
      start_tls: false                     # StartTLS on ldap://
      ca_file: certs/ca.pem                # trust for TLS; tls_verify: false must be explicit (warns)
      partitions: [dc=example,dc=org]      # naming contexts / base DNs, each read and written on its own
      objects:                             # object types by object class
        inetOrgPerson: {disable: {move_to: "ou=disabled"}}
        groupOfNames: {placeholder: "cn=nobody"}
      concurrency: 4                       # pooled connections for concurrent exports
      password_hash: ssha                  # ssha | ssha256 | ssha512 | crypt | none

Object names are DNs: a manifest's ``target.name`` template (``uid={uid},ou={department},ou=people,
dc=example,dc=org``) is escaped per RFC 4514 by the engine; ``names: relative`` takes templates
relative to the object's partition instead. Anchors are entryUUIDs. See docs/ldap.md.

The work is in :mod:`.connection` (URLs, TLS, binds, the pool, result codes), :mod:`.schema`
(subschema, matching rules), :mod:`.layout` (partitions, names, values), :mod:`.read` (paged and
delta reads) and :mod:`.write` (add, modify, modDN, delete, disable, passwords).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import ldap3
from ldap3.core import exceptions as lx

from runner import budgets
from runner.connectors.base import (
    NORMALIZATIONS,
    Capabilities,
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ObjectError,
    ObjectInfo,
    Operation,
    Page,
    Record,
    Result,
    SystemUnavailable,
    WatermarkExpired,
    shared_budget,
)
from runner.connectors.ldap import dn as dns
from runner.connectors.ldap import read
from runner.connectors.ldap.connection import (
    BROKEN,
    Pool,
    communication_error,
    connect,
    make_server,
    settings_from,
)
from runner.connectors.ldap.layout import DEFAULT_MULTI, GROUP_ATTRIBUTES, Layout, ObjectView
from runner.connectors.ldap.schema import Schema, from_ldap3
from runner.connectors.ldap.write import HASHES, Writer, hash_problem

DEFAULT_OBJECTS: dict[str, dict[str, Any]] = {"inetOrgPerson": {}, "groupOfNames": {}, "organizationalUnit": {}}
OPERATIONS = frozenset({"add", "update", "rename", "disable", "delete", "set_password"})
_DN = {"type": "string", "minLength": 1}

OBJECT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "classes": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "objectClass values of a new entry (default: the class and its superclasses)"},
        "auxiliary": {"type": "array", "items": {"type": "string"}, "description": "auxiliary classes to add"},
        "filter": {"type": "string", "description": "what a read matches (default: (objectClass=<name>))"},
        "multi_valued": {"type": "array", "items": {"type": "string"},
                         "description": "attributes read as lists even with one value (member... by default)"},
        "disable": {"type": "object", "additionalProperties": False,
                    "properties": {"move_to": {**_DN, "description": "container a disabled entry moves to, "
                                                                       "relative to its partition"}}},
        "placeholder": {"type": ["string", "null"],
                        "description": "the member DN that keeps an empty group valid (groupOfNames needs one)"},
    },
}


def _stops(error: Exception) -> type[ConnectionFailed]:
    """The error a failed read stops the pass with: SystemUnavailable when the connection broke
    or timed out, ConnectionFailed for what the directory answered."""
    return SystemUnavailable if isinstance(error, BROKEN) else ConnectionFailed


class LdapConnector(Connector):
    """An LDAPv3 directory: hierarchical DNs, partitions, accesslog delta reads, passwords in the add."""

    type_name = "ldap"
    interface_version = 2
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "type": {"const": "ldap"},
            "url": {"type": "string", "pattern": "^(ldap|ldaps|ldapi)://", "description": "ldap://, ldaps://, ldapi://"},
            "bind_dn": {"type": "string"},
            "password": {"type": "string"},
            "sasl": {"enum": ["EXTERNAL", "external"]},
            "start_tls": {"type": "boolean", "default": False},
            "tls_verify": {"type": "boolean", "default": True},
            "ca_file": {"type": "string", "description": "CA certificates (PEM), relative to the manifest"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 30},
            "concurrency": {"type": "integer", "minimum": 1, "default": 4},
            "partitions": {"type": "array", "minItems": 1, "uniqueItems": True, "items": _DN},
            "base_dn": {**_DN, "description": "one partition (the same as partitions: [base_dn])"},
            "names": {"enum": ["full", "relative"], "default": "full",
                      "description": "object names are full DNs, or relative to their partition's base DN"},
            "objects": {"type": "object", "minProperties": 1, "additionalProperties": OBJECT_SCHEMA},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 500},
            "delta": {"enum": ["auto", "accesslog", "modify_timestamp"], "default": "auto"},
            "password_attribute": {"type": "string", "default": "userPassword"},
            "password_hash": {"enum": list(HASHES), "default": "ssha"},
            "create_parents": {"type": "boolean", "default": True},
            "remove_empty_parents": {"type": "boolean", "default": False},
            "delete_subtree": {"type": "boolean", "default": False},
            "group_placeholder": {**_DN, "description": "the placeholder member of every group type (default: "
                                                        "the bind DN, else the partition's base DN)"},
            "normalizations": {"type": "object",
                               "additionalProperties": {"type": "array", "items": {"enum": list(NORMALIZATIONS)}}},
            "max_values_per_operation": {"type": "integer", "minimum": 0, "default": 0},
            "budget": {**budgets.SCHEMA, "description": "writes (each add, modify, modDN, delete) shared with every "
                                                        "process and pipeline naming this budget: a directory's "
                                                        "limit on one client, kept in Redis (docs/distributed.md)"},
        },
    }

    pool: Pool | None = None
    writer: Writer | None = None
    budget: budgets.Budget | None = None
    info: Any = None
    delta_mode: str | None = None

    def __init__(self, config: Mapping[str, Any], context: Any):
        super().__init__(config, context)
        self.layout = Layout(self._partitions(), config.get("names", "full") == "relative", self._views(),
                             owner=context.name)

    # ---- facts ------------------------------------------------------------------------------------

    def _partitions(self) -> list[str]:
        if self.config.get("partitions"):
            return [str(p) for p in self.config["partitions"]]
        if self.config.get("base_dn"):
            return [str(self.config["base_dn"])]
        return []

    def _views(self, schema: Schema | None = None) -> dict[str, ObjectView]:
        views = {}
        for name, options in (self.config.get("objects") or DEFAULT_OBJECTS).items():
            options = options or {}
            holder = GROUP_ATTRIBUTES.get(name.lower())
            placeholder = options.get("placeholder", self.config.get("group_placeholder") or
                                      self.config.get("bind_dn") or (self._partitions() or [None])[0]) if holder else None
            # the structural class alone: directories add its superclasses (RFC 4512 §2.4.1), and
            # each extra value costs encoding time on every add; ``classes`` lists more when needed
            classes = options.get("classes") or [schema.classes[name.lower()].name if schema and
                                                 name.lower() in schema.classes else name]
            views[name] = ObjectView(
                name=name, classes=tuple(classes), filter=options.get("filter") or f"(objectClass={name})",
                auxiliary=tuple(options.get("auxiliary", ())),
                multi_valued=frozenset(DEFAULT_MULTI) | frozenset(options.get("multi_valued", ())),
                disable_container=(options.get("disable") or {}).get("move_to"),
                placeholder_attribute=holder if placeholder else None, placeholder=placeholder)
        return views

    def capabilities(self, object: str | None = None) -> Capabilities:
        """The same for every object class. References (member, manager) are DNs; an object whose
        add was lost is found by its DN (``get`` by name), its entryUUID being the server's."""
        declared = self.config.get("normalizations") or {}
        return Capabilities(
            partitions=True, hierarchical=True, delta_read=True, full_export=True, delete_add_as_replace=False,
            password_in_first_pass=True,
            normalizations={a: tuple(steps) for a, steps in declared.items()},
            max_concurrency=int(self.config.get("concurrency", 4)), operations=OPERATIONS,
            multi_valued_deltas=True, export_style="delta", reference_forms={"*": "name"}, correlation=(),
            generated_anchor=True, max_values_per_operation=int(self.config.get("max_values_per_operation", 0)))

    def negotiate(self, object: str) -> Capabilities:
        """The static declaration, with the normalizations the server's matching rules imply for
        every attribute the object class allows (the configuration's own win)."""
        caps = self.capabilities(object)
        if not self.layout.schema.attributes:
            return caps
        try:
            view = self.layout.view(object)
        except ObjectError:
            return caps
        must, may = self.layout.schema.allowed([view.name, *view.auxiliary])
        derived = self.layout.schema.normalizations([*must, *may])
        return dataclasses.replace(caps, normalizations={**derived, **caps.normalizations})

    def object_names(self) -> list[str]:
        return list(self.config.get("objects") or DEFAULT_OBJECTS)

    def check(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if not self._partitions():
            problems.append(((), "name the directory's base DN: partitions: [dc=example,dc=org] (or base_dn)"))
        for i, partition in enumerate(self._partitions()):
            try:
                if not dns.parse_dn(partition):
                    raise dns.BadDN("empty")
            except dns.BadDN as exc:
                problems.append((("partitions", i), f"{partition!r} is not a DN: {exc}"))
        if self.config.get("sasl") and self.config.get("password"):
            problems.append((("password",), "SASL EXTERNAL takes no password: remove one of the two"))
        if self.config.get("password") and not self.config.get("bind_dn") and not self.config.get("sasl"):
            problems.append((("bind_dn",), "a password needs the bind_dn it belongs to"))
        if str(self.config.get("url", "")).lower().startswith("ldaps://") and self.config.get("start_tls"):
            problems.append((("start_tls",), "ldaps:// is TLS already; StartTLS is for ldap://"))
        hashing = hash_problem(str(self.config.get("password_hash", "ssha")))
        if hashing:
            problems.append((("password_hash",), hashing))
        return problems + budgets.problems(self.config) + self._container_problems()

    def _container_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """``disable.move_to`` containers an entry is moved below: like a name, one that is no DN
        or names another naming context would be created below the partition."""
        if not self._partitions():
            return []
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, options in (self.config.get("objects") or {}).items():
            container = ((options or {}).get("disable") or {}).get("move_to")
            why = self.layout.container_problem(str(container)) if container else None
            if why is not None:
                problems.append((("objects", name, "disable", "move_to"), f"disable.move_to {why}"))
        return problems

    def name_problem(self, object: str, name: str, partition: str | None = None) -> str | None:
        """A DN outside every partition, or with an RDN lacking ``attr=`` or a value: written
        as is, the add would create the containers it implies below the partition (``dc=com``
        under ``dc=example,dc=org``). Needs no connection: ``provision validate`` asks it about
        each ``target.name`` template, the engine about every rendered name."""
        if not self._partitions():
            return None  # check() reports the missing partitions
        return self.layout.name_problem(name, partition)

    # ---- lifecycle --------------------------------------------------------------------------------

    def open(self) -> None:
        problems = self.check()
        if problems:
            raise ConfigurationError(problems[0][1])
        settings = settings_from(self.config, self.context.base_dir)
        if not settings.tls_verify:
            self.context.logger.warning("connector %s: tls_verify is false: the server's certificate is not "
                                        "checked, so anyone on the path can read the bind password", self.context.name)
        if settings.scheme == "ldap" and not settings.start_tls and settings.password and \
                not settings.url.startswith(("ldap://127.", "ldap://localhost", "ldap://[::1]")):
            self.context.logger.warning("connector %s: the bind password crosses the network in clear (use "
                                        "ldaps:// or start_tls: true)", self.context.name)
        schema_server = make_server(settings)
        schema_server.get_info = ldap3.ALL
        first = connect(settings, schema_server, self.context.redact)
        try:
            self.info = schema_server.info
            schema = from_ldap3(schema_server.schema) if schema_server.schema else Schema()
            self._check_partitions(first)
            self.delta_mode = self._delta_mode(first)
        finally:
            with contextlib.suppress(Exception):
                first.unbind()
        self.layout = Layout(self._partitions(), self.layout.relative_names, self._views(schema), schema,
                             owner=self.context.name)
        self.pool = Pool(settings, self.context.redact)
        self.budget = shared_budget(self.config.get("budget"), f"connector {self.context.name!r}")
        self.writer = Writer(self.layout, password_attribute=self.config.get("password_attribute", "userPassword"),
                             password_hash=self.config.get("password_hash", "ssha"),
                             create_parents=self.config.get("create_parents", True),
                             remove_empty_parents=self.config.get("remove_empty_parents", False),
                             delete_subtree=self.config.get("delete_subtree", False), redact=self.context.redact)

    def _check_partitions(self, conn: ldap3.Connection) -> None:
        for base in self._partitions():
            conn.search(base, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
            if conn.result.get("result") != 0:
                known = ", ".join(self.info.naming_contexts or []) if self.info else "?"
                raise ConfigurationError(f"partition {base!r} cannot be read on {self.config['url']} "
                                         f"({conn.result.get('description')}); the server's naming contexts: {known}")

    def _delta_mode(self, conn: ldap3.Connection) -> str:
        wanted = self.config.get("delta", "auto")
        if wanted == "modify_timestamp":
            return wanted
        conn.search(read.ACCESSLOG, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
        if conn.result.get("result") == 0:
            return "accesslog"
        if wanted == "accesslog":
            raise ConfigurationError(f"delta: accesslog, but {read.ACCESSLOG} cannot be read on {self.config['url']} "
                                     f"({conn.result.get('description')}): load slapo-accesslog or grant read")
        return "modify_timestamp"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def ping(self) -> None:
        """Drop pooled connections the server closed (a restart, an idle timeout); ConnectionFailed
        when no new one can be made."""
        pool = self._pool()
        pool.drop_idle()
        try:
            with pool.connection() as conn:
                conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
        except lx.LDAPException as exc:
            raise SystemUnavailable(f"the directory at {self.config['url']} does not answer: "
                                   f"{self.context.redact(str(exc))}") from None

    def _pool(self) -> Pool:
        if self.pool is None:
            raise ConnectionFailed(f"connector {self.context.name!r} is not open")
        return self.pool

    def _page_size(self, page_size: int | None) -> int:
        return int(page_size or self.config.get("page_size", 500))

    # ---- reading ----------------------------------------------------------------------------------

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        try:
            view = self.layout.view(object)
            bases = self.layout.bases(partition)
        except ObjectError as exc:
            raise ConnectionFailed(str(exc)) from None
        size = self._page_size(page_size)
        try:
            with self._pool().connection() as conn:
                yield from self._read(conn, view, bases, watermark, attributes, size)
        except lx.LDAPException as exc:
            raise _stops(exc)(f"reading {object} from {self.config['url']} failed: "
                                   f"{self.context.redact(str(exc))}") from None

    def _read(self, conn: ldap3.Connection, view: ObjectView, bases: list[str], watermark: str | None,
              attributes: Sequence[str] | None, size: int) -> Iterator[Page]:
        previous: list[Record] | None = None
        marks: dict[str, Any] = {}

        def pages(records: Iterable[list[Record]]) -> Iterator[Page]:
            nonlocal previous
            for batch in records:
                if not batch:
                    continue
                if previous is not None:
                    yield Page(previous)
                previous = batch

        since = self._parse_watermark(watermark, bases) if watermark is not None else None
        if self.delta_mode == "accesslog":
            # every base's contextCSN first, and every delta watermark checked against it before a
            # page is handed over: a watermark the directory cannot honour is a full read of all
            for base in bases:
                marks[base] = read.context_csn(conn, self._suffix(base))
                if since is not None:
                    read.check_csn(conn, self._suffix(base), since[base], marks[base])
        for base in bases:
            if self.delta_mode == "accesslog":
                if since is None:
                    yield from pages(read.full(conn, self.layout, view, base, size, attributes))
                else:
                    yield from pages(read.accesslog_delta(conn, self.layout, view, base, since[base], size,
                                                          attributes))
            else:
                newest: list[Any] = []
                if since is None:
                    yield from pages(read.full(conn, self.layout, view, base, size, attributes, newest))
                    if not newest:
                        newest = ["19700101000000Z", set()]
                else:
                    stamp, seen = since[base]
                    newest[:] = [stamp, set(seen)]
                    yield from pages(read.timestamp_delta(conn, self.layout, view, base, stamp, set(seen), size,
                                                          attributes, newest))
                marks[base] = [newest[0], sorted(newest[1])]
        yield Page(previous or [], watermark=json.dumps({"mode": self.delta_mode, "marks": marks},
                                                        separators=(",", ":")))

    def _suffix(self, base: str) -> str:
        """The naming context holding ``base`` (its contextCSN dates the partition's changes)."""
        contexts = [c for c in (self.info.naming_contexts or []) if dns.is_under(base, c)] if self.info else []
        return max(contexts, key=len) if contexts else base

    def _parse_watermark(self, watermark: str, bases: list[str]) -> dict[str, Any]:
        try:
            parsed = json.loads(watermark)
            marks = parsed["marks"]
            assert parsed["mode"] == self.delta_mode and all(b in marks for b in bases)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise WatermarkExpired(f"watermark {watermark[:80]!r} was not made by this directory's "
                                   f"{self.delta_mode} delta reads") from None
        if self.delta_mode != "accesslog":
            for base in bases:
                stamp = marks[base][0] if isinstance(marks[base], list) and marks[base] else None
                if not isinstance(stamp, str) or not read.TIMESTAMP.match(stamp):
                    raise WatermarkExpired(f"watermark {watermark[:80]!r} has no timestamp for {base}")
        return {b: marks[b] for b in bases}

    def get(self, object: str, anchor: str | None = None, *, name: str | None = None,
            partition: str | None = None) -> Record | None:
        view = self.layout.view(object)
        bases = self.layout.bases(partition)
        try:
            with self._pool().connection() as conn:
                if anchor is not None:
                    return read.by_uuid(conn, self.layout, view, anchor, bases)
                if name:
                    return read.by_name(conn, self.layout, view, name, bases)
                return None
        except lx.LDAPException as exc:
            raise _stops(exc)(f"reading from {self.config['url']} failed: {self.context.redact(str(exc))}") \
                from None

    def lookup(self, object: str, values: Mapping[str, Any], *, partition: str | None = None) -> list[Record]:
        view = self.layout.view(object)
        try:
            with self._pool().connection() as conn:
                return read.lookup(conn, self.layout, view, dict(values), self.layout.bases(partition),
                                   self._page_size(None))
        except lx.LDAPException as exc:
            raise _stops(exc)(f"reading from {self.config['url']} failed: {self.context.redact(str(exc))}") \
                from None

    def discover(self) -> Sequence[ObjectInfo]:
        if not self.layout.schema.classes:
            return [ObjectInfo(name, partitions=tuple(self._partitions())) for name in self.object_names()]
        return [self.layout.schema.object_info(v.name, v.auxiliary, self._partitions(), hidden=("objectClass",))
                for v in self.layout.objects.values()]

    def identity(self) -> Mapping[str, Any]:
        """The directory's URL and the naming contexts it serves (what rootDSE says)."""
        contexts = sorted(str(c) for c in (self.info.naming_contexts or [])) if self.info is not None else []
        return {"directory": str(self.config["url"]), "naming_contexts": contexts}

    def server_info(self) -> Mapping[str, Any]:
        info = self.info
        if info is None:
            return {}
        def names(items: Any) -> list[str]:
            return sorted({f"{i[2] or i[0]}" + (f" ({i[3]})" if i[3] else "") for i in items or []})
        facts = {
            "url": self.config["url"],
            "vendor": " ".join(str(v) for v in (info.vendor_name or [])) or None,
            "version": " ".join(str(v) for v in (info.vendor_version or [])) or None,
            "naming_contexts": list(info.naming_contexts or []),
            "supported_ldap_versions": [str(v) for v in info.supported_ldap_versions or []],
            "supported_controls": names(info.supported_controls),
            "supported_extensions": names(info.supported_extensions),
            "supported_sasl_mechanisms": list(info.supported_sasl_mechanisms or []),
            "delta": self.delta_mode,
            "object_classes": len({c.name for c in self.layout.schema.classes.values()}),
            "attribute_types": len({a.name for a in self.layout.schema.attributes.values()}),
        }
        return {k: v for k, v in facts.items() if v is not None}

    # ---- writing ----------------------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> Iterable[Result]:
        pool = self._pool()
        writer = self.writer
        assert writer is not None
        budget = self.budget
        for op in operations:
            try:
                with budget.slot() if budget is not None else contextlib.nullcontext(), pool.connection() as conn:
                    result = writer.apply(conn, op)
            except BROKEN as exc:
                pool.drop_idle()  # its siblings went with the server
                result = Result.failed(op, communication_error(exc, f"{op.kind} of {op.name or op.anchor}",
                                                               self.context.redact))
            except lx.LDAPException as exc:
                result = Result.failed(op, ObjectError(f"{op.kind} of {op.name or op.anchor}: "
                                                       f"{self.context.redact(str(exc))}"))
            yield result
