-- The hr-sql-* examples' target: accounts and teams keyed by the HR ids. Run by the sql connector
-- on open (init_sql); every statement is safe to repeat, and the same text works on SQLite,
-- PostgreSQL and MariaDB, so TARGET_DB_URL may point at any of them.
CREATE TABLE IF NOT EXISTS accounts (
    employee_id  VARCHAR(16)  NOT NULL PRIMARY KEY,
    user_name    VARCHAR(128) NOT NULL UNIQUE,
    display_name VARCHAR(255),
    given_name   VARCHAR(128),
    family_name  VARCHAR(128),
    email        VARCHAR(255),
    department   VARCHAR(128),
    title        VARCHAR(255),
    phone        VARCHAR(64),
    manager_id   VARCHAR(16),
    active       BOOLEAN      NOT NULL DEFAULT TRUE
);
CREATE TABLE IF NOT EXISTS teams (
    group_id    VARCHAR(16)  NOT NULL PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    description VARCHAR(255)
);
CREATE TABLE IF NOT EXISTS team_members (
    group_id    VARCHAR(16) NOT NULL,
    employee_id VARCHAR(16) NOT NULL,
    PRIMARY KEY (group_id, employee_id)
);
