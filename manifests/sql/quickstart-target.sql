-- The quickstart's target: an application's user and group tables.
-- Run by the sql connector on open (init_sql); every statement is safe to repeat.
CREATE TABLE IF NOT EXISTS users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name      TEXT NOT NULL UNIQUE,
    display_name   TEXT,
    given_name     TEXT,
    family_name    TEXT,
    email          TEXT,
    department     TEXT,
    title          TEXT,
    phone          TEXT,
    manager_id     INTEGER REFERENCES users(id) ON DELETE SET NULL,
    active         BOOLEAN NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS groups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    description TEXT
);
CREATE TABLE IF NOT EXISTS group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
