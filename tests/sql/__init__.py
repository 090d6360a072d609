"""The sql connector, feature by feature, on SQLite, PostgreSQL and MariaDB."""
