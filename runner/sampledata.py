"""Deterministic synthetic HR data for tests, examples and benchmarks.

The project's own copy of the reference generator (same formats, same seeds, same kinds of
change), so tests and benchmarks run on a machine that has nothing but this repository.
Run it as ``python -m runner.sampledata``.

Writes the same people and groups three ways, so every connector can be fed the same truth:
  people.csv, groups.csv   (groups.members: employee ids joined by ';')
  hr.db                    (SQLite: employees, groups, group_members; updated_at on every row;
                            changes: one row per add/modify/delete that `mutate` made, in order,
                            like the change table a database trigger keeps)

  python -m runner.sampledata make   --out DIR [--people N] [--groups G] [--seed S] [--group-sizes stratified]
  python -m runner.sampledata mutate --out DIR [--seed S] [--percent P]   # change about P% of the people
  python -m runner.sampledata check  --out DIR                            # the three forms agree

`mutate` applies hires, terminations, removals, renames, department moves and membership changes
to all three forms at once, bumps updated_at on what it touched, and prints a JSON summary of the
anchors it changed, so a test can verify exactly what a delta run must do.

Group sizes follow a Pareto distribution (shape 1.2, at least 3), like real directories with a
few all-staff groups. Drawn at random (the default, as the reference generator does) their sum
is noisy: 1,000 groups hold anywhere from about 9,700 to 23,000 memberships depending on the
seed, so 10x the groups is not reliably 10x the memberships (seed 1: 11,201 and 169,899, 15x).
``--group-sizes stratified`` takes the distribution's quantiles at (g - 0.5) / G instead, shuffled:
the same shape without the sampling noise (13,500 and 147,873 memberships, 10.95x), for
benchmarks that compare sizes.

Only the standard library is used. Names include diacritics, apostrophes, hyphens and duplicates
on purpose: a provisioning tool has to cope with them.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import sqlite3
import sys
import unicodedata
from pathlib import Path

PEOPLE_COLUMNS = [
    "employee_id", "first_name", "last_name", "preferred_name", "email", "department",
    "title", "manager_id", "status", "phone", "hire_date", "updated_at",
]
GROUP_COLUMNS = ["group_id", "name", "description", "members", "updated_at"]

FIRST = ["Anna", "José", "Zoë", "Øyvind", "Łukasz", "Mei", "Sean", "Aoife", "Chloé", "Jürgen",
         "Priya", "Olúwásèun", "John", "María", "Nguyễn", "Søren", "Ana-Maria", "D'Arcy", "Renée",
         "Bjørn", "François", "Ingrid", "Kenji", "Fatima", "Tomás", "Élodie", "Mateus", "Ülkü"]
LAST = ["Smith", "O'Brien", "Müller", "García", "Núñez", "van der Berg", "Kowalski", "Nakamura",
        "Ødegård", "Dubois", "Okafor", "Lindqvist", "Smith-Jones", "Brontë", "Đorđević", "Rossi",
        "MacDonald", "Łęcki", "Hansen", "Zhang", "Petrov", "Fernández", "Çelik", "Öztürk"]
DEPARTMENTS = ["Engineering", "Sales", "Finance", "Human Resources", "Legal", "Support",
               "Marketing", "Research & Development", "Operations"]
TITLES = ["Engineer", "Senior Engineer", "Manager", "Director", "Analyst", "Specialist, Tier 2",
          "Consultant", "Associate", "Lead \"Platform\"", "Intern"]
STATUSES = ["active"] * 17 + ["leave", "terminated"]
BASE_TIME = dt.datetime(2026, 1, 1, 8, 0, 0, tzinfo=dt.timezone.utc)


def stamp(seconds: int) -> str:
    return (BASE_TIME + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def employee_id(n: int) -> str:
    return f"E{n:07d}"


FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss"})


def ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(FOLD))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum() or c in ".-")


def make_person(rng: random.Random, n: int, manager: str, clock: int) -> dict[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = ascii_fold(f"{first}.{last}".lower())
    return {
        "employee_id": employee_id(n),
        "first_name": first,
        "last_name": last,
        "preferred_name": first if rng.random() < 0.9 else "",
        "email": f"{local}.{n}@example.org",
        "department": rng.choice(DEPARTMENTS),
        "title": rng.choice(TITLES),
        "manager_id": manager,
        "status": rng.choice(STATUSES),
        "phone": f"+1 555 {rng.randrange(1000000):07d}" if rng.random() < 0.8 else "",
        "hire_date": (dt.date(2010, 1, 1) + dt.timedelta(days=rng.randrange(5800))).isoformat(),
        "updated_at": stamp(clock),
    }


class Dataset:
    def __init__(self, out: Path):
        self.out = out
        self.people: dict[str, dict[str, str]] = {}
        self.groups: dict[str, dict[str, str]] = {}
        self.changes: list[tuple[str, str, str, str]] = []  # (table, anchor, change, changed_at)

    # ---- reading and writing the three forms -------------------------------------------------
    def load(self) -> "Dataset":
        csv.field_size_limit(2**31 - 1)  # a big group's member list passes 128 KiB at 1M people
        with open(self.out / "people.csv", newline="", encoding="utf-8") as f:
            self.people = {r["employee_id"]: r for r in csv.DictReader(f)}
        with open(self.out / "groups.csv", newline="", encoding="utf-8") as f:
            self.groups = {r["group_id"]: r for r in csv.DictReader(f)}
        if (self.out / "hr.db").exists():
            db = sqlite3.connect(self.out / "hr.db")
            self.changes = list(db.execute(
                "SELECT table_name, anchor, change_type, changed_at FROM changes ORDER BY seq"))
            db.close()
        return self

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "people.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, PEOPLE_COLUMNS)
            w.writeheader()
            w.writerows(self.people[k] for k in sorted(self.people))
        with open(self.out / "groups.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, GROUP_COLUMNS)
            w.writeheader()
            w.writerows(self.groups[k] for k in sorted(self.groups))
        self._save_sqlite()

    def _save_sqlite(self) -> None:
        path = self.out / "hr.db"
        tmp = path.with_suffix(".db.tmp")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp)
        cols = ", ".join(f"{c} TEXT" for c in PEOPLE_COLUMNS[1:])
        db.execute(f"CREATE TABLE employees (employee_id TEXT PRIMARY KEY, {cols})")
        db.execute("CREATE TABLE groups (group_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
                   " description TEXT, updated_at TEXT NOT NULL)")
        db.execute("CREATE TABLE group_members (group_id TEXT NOT NULL REFERENCES groups,"
                   " employee_id TEXT NOT NULL REFERENCES employees,"
                   " PRIMARY KEY (group_id, employee_id))")
        marks = ", ".join("?" for _ in PEOPLE_COLUMNS)
        db.executemany(f"INSERT INTO employees VALUES ({marks})",
                       ([p[c] for c in PEOPLE_COLUMNS] for p in self.people.values()))
        db.executemany("INSERT INTO groups VALUES (?, ?, ?, ?)",
                       ((g["group_id"], g["name"], g["description"], g["updated_at"])
                        for g in self.groups.values()))
        db.executemany("INSERT INTO group_members VALUES (?, ?)",
                       ((g["group_id"], m) for g in self.groups.values()
                        for m in g["members"].split(";") if m))
        db.execute("CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " table_name TEXT NOT NULL, anchor TEXT NOT NULL,"
                   " change_type TEXT NOT NULL CHECK (change_type IN ('add', 'modify', 'delete')),"
                   " changed_at TEXT NOT NULL)")
        db.executemany("INSERT INTO changes (table_name, anchor, change_type, changed_at)"
                       " VALUES (?, ?, ?, ?)", self.changes)
        db.execute("CREATE INDEX employees_updated ON employees(updated_at)")
        db.commit()
        db.close()
        tmp.replace(path)

    def clock(self) -> int:
        """Seconds after BASE_TIME of the newest updated_at, so mutations always move forward."""
        newest = max([r["updated_at"] for r in self.people.values()] +
                     [g["updated_at"] for g in self.groups.values()] + [stamp(0)])
        t = dt.datetime.strptime(newest, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        return int((t - BASE_TIME).total_seconds())


PARETO_SHAPE, SMALLEST_GROUP = 1.2, 3


def stratified_sizes(rng: random.Random, groups: int) -> list[int]:
    """The Pareto group sizes at the distribution's quantiles, in a random order."""
    sizes = [int(SMALLEST_GROUP * ((g - 0.5) / groups) ** (-1 / PARETO_SHAPE)) for g in range(1, groups + 1)]
    rng.shuffle(sizes)
    return sizes


def make(out: Path, people: int, groups: int, seed: int, stratified: bool = False) -> Dataset:
    rng = random.Random(seed)
    ds = Dataset(out)
    for n in range(1, people + 1):
        manager = employee_id(rng.randrange(1, n)) if n > 1 and rng.random() < 0.95 else ""
        p = make_person(rng, n, manager, clock=n)
        ds.people[p["employee_id"]] = p
    ids = list(ds.people)
    drawn = stratified_sizes(rng, groups) if stratified else None
    for g in range(1, groups + 1):
        # random draws interleave with the member samples, as in the reference generator
        size = drawn[g - 1] if drawn else int(rng.paretovariate(PARETO_SHAPE) * SMALLEST_GROUP)
        size = min(len(ids), max(0, size))
        members = sorted(rng.sample(ids, size)) if ids else []
        gid = f"G{g:05d}"
        ds.groups[gid] = {"group_id": gid, "name": f"{rng.choice(DEPARTMENTS)} team {g}",
                          "description": rng.choice(["", "Mailing list", "Access; VPN", "Ops, on-call"]),
                          "members": ";".join(members), "updated_at": stamp(people + g)}
    ds.save()
    return ds


def mutate(out: Path, seed: int, percent: float) -> dict:
    rng = random.Random(seed)
    ds = Dataset(out).load()
    clock = ds.clock()
    ids = sorted(ds.people)
    k = max(1, int(len(ids) * percent / 100))
    summary: dict[str, list[str]] = {"hired": [], "terminated": [], "removed": [], "renamed": [],
                                     "moved": [], "updated": [], "groups_changed": []}

    def touch(row: dict[str, str], change: str = "modify") -> None:
        nonlocal clock
        clock += 1
        row["updated_at"] = stamp(clock)
        table, anchor = ("employees", row["employee_id"]) if "employee_id" in row else ("groups", row["group_id"])
        ds.changes.append((table, anchor, change, row["updated_at"]))

    touched = rng.sample(ids, min(len(ids), k))
    for i, eid in enumerate(touched):
        p = ds.people[eid]
        kind = i % 5
        if kind == 0:
            p["title"] = rng.choice(TITLES)
            p["phone"] = f"+1 555 {rng.randrange(1000000):07d}"
            summary["updated"].append(eid)
        elif kind == 1:
            p["last_name"] = rng.choice(LAST)
            summary["renamed"].append(eid)
        elif kind == 2:
            p["department"] = rng.choice([d for d in DEPARTMENTS if d != p["department"]])
            summary["moved"].append(eid)
        elif kind == 3 and p["status"] != "terminated":
            p["status"] = "terminated"
            summary["terminated"].append(eid)
        else:
            p["title"] = rng.choice(TITLES)
            summary["updated"].append(eid)
        touch(p)
    # hard removals: rows that vanish from the source altogether
    changed = set(touched)
    order = {gid: n for n, gid in enumerate(ds.groups)}
    groups_of: dict[str, list[str]] = {}  # member -> the groups holding them (a scan per removal is 1M x 10k)
    for gid, g in ds.groups.items():
        for m in g["members"].split(";"):
            if m:
                groups_of.setdefault(m, []).append(gid)
    for eid in rng.sample([i for i in ids if i not in changed], min(max(1, k // 10), len(ids) - len(touched))):
        del ds.people[eid]
        clock += 1
        ds.changes.append(("employees", eid, "delete", stamp(clock)))
        summary["removed"].append(eid)
        for gid in sorted(set(groups_of.get(eid, ())), key=order.__getitem__):
            g = ds.groups[gid]
            g["members"] = ";".join(m for m in g["members"].split(";") if m and m != eid)
            touch(g)
            summary["groups_changed"].append(gid)
    # hires
    next_n = max(int(i[1:]) for i in ds.people) + 1 if ds.people else 1
    for n in range(next_n, next_n + max(1, k // 5)):
        clock += 1
        p = make_person(rng, n, rng.choice(list(ds.people)) if ds.people else "", clock)
        p["status"] = "active"
        ds.people[p["employee_id"]] = p
        ds.changes.append(("employees", p["employee_id"], "add", p["updated_at"]))
        summary["hired"].append(p["employee_id"])
    # membership changes
    live = sorted(ds.people)
    for gid in rng.sample(sorted(ds.groups), min(len(ds.groups), max(1, len(ds.groups) * int(percent) // 100 or 1))):
        g = ds.groups[gid]
        members = set(m for m in g["members"].split(";") if m)
        members.add(rng.choice(live))
        if len(members) > 1 and rng.random() < 0.5:
            members.discard(rng.choice(sorted(members)))
        g["members"] = ";".join(sorted(members))
        touch(g)
        summary["groups_changed"].append(gid)
    summary["groups_changed"] = sorted(set(summary["groups_changed"]))
    ds.save()
    return summary


def check(out: Path) -> None:
    ds = Dataset(out).load()
    db = sqlite3.connect(out / "hr.db")
    rows = {r[0]: r for r in db.execute(f"SELECT {', '.join(PEOPLE_COLUMNS)} FROM employees")}
    assert rows.keys() == ds.people.keys(), "employees differ between people.csv and hr.db"
    for eid, row in rows.items():
        assert list(row) == [ds.people[eid][c] for c in PEOPLE_COLUMNS], f"{eid} differs"
    members: dict[str, set[str]] = {}
    for gid, eid in db.execute("SELECT group_id, employee_id FROM group_members"):
        members.setdefault(gid, set()).add(eid)
    for gid, g in ds.groups.items():
        assert members.get(gid, set()) == set(m for m in g["members"].split(";") if m), f"{gid} differs"
    print(f"ok: {len(ds.people)} people, {len(ds.groups)} groups agree")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--people", type=int, default=1000)
    m.add_argument("--groups", type=int, default=50)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--group-sizes", choices=("random", "stratified"), default="random",
                   help="random Pareto draws (as the reference generator), or its quantiles (no sampling noise)")
    u = sub.add_parser("mutate")
    u.add_argument("--out", type=Path, required=True)
    u.add_argument("--seed", type=int, default=2)
    u.add_argument("--percent", type=float, default=1.0)
    c = sub.add_parser("check")
    c.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if a.cmd == "make":
        ds = make(a.out, a.people, a.groups, a.seed, stratified=a.group_sizes == "stratified")
        print(json.dumps({"people": len(ds.people), "groups": len(ds.groups), "out": str(a.out)}))
    elif a.cmd == "mutate":
        print(json.dumps(mutate(a.out, a.seed, a.percent)))
    else:
        check(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
