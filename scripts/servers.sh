# Throwaway PostgreSQL and MariaDB servers for the test suite, when the machine runs none.
#
# Sourced by scripts/test (bash):
#   . scripts/servers.sh
#   servers_start        # exports PROVISION_TEST_POSTGRESQL_URL and PROVISION_TEST_MARIADB_URL
#   ...run the tests...
#   servers_stop         # stops what servers_start started (by PID) and removes its folders
#
# A server already answering on 127.0.0.1:5432 (PostgreSQL) or :3306 (MariaDB), as on the
# project's machines, is used as it is. Otherwise the server is installed when missing
# (Debian packages) and a cluster of its own is made in a temporary folder and started on a free
# port, bound to 127.0.0.1 only, with trust (PostgreSQL) or an empty root password (MariaDB):
# it lives for this test run and holds nothing else. As root, both run as their own system users
# (setpriv), never as root. PROVISION_TEST_OWN_SERVERS=1 starts throwaway ones even when the
# machine's servers answer (to test this script).

_servers_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_servers_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_servers_apt() {
    if [ "$(id -u)" = 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

# Run a server program as its own user when we are root (initdb and mariadbd refuse root).
_servers_as() {
    local user=$1; shift
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
    else
        "$@"
    fi
}

_servers_dir() {  # a folder the server's user may enter and own
    local dir user=$1
    dir=$(mktemp -d "${TMPDIR:-/tmp}/provision-$user.XXXXXX")
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown "$user": "$dir"; fi
    echo "$dir"
}

_servers_pg_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$found" ] && [ -x "$found/initdb" ] && echo "$found"
}

_servers_start_postgresql() {
    local bin dir port user
    bin=$(_servers_pg_bin) || true
    if [ -z "$bin" ]; then
        _servers_apt postgresql
        bin=$(_servers_pg_bin)
    fi
    user=$(id -un); [ "$(id -u)" = 0 ] && user=postgres
    dir=$(_servers_dir "$user")
    port=$(_servers_free_port)
    _servers_as "$user" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/initdb.log"
    _servers_as "$user" "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/server.log" -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c max_connections=200" \
        start >/dev/null
    SERVERS_PG_DIR=$dir
    SERVERS_PG_BIN=$bin
    SERVERS_PG_USER=$user
    export PROVISION_TEST_POSTGRESQL_URL="postgresql+psycopg://postgres@127.0.0.1:$port"
    echo "servers: started a throwaway PostgreSQL on 127.0.0.1:$port ($dir)" >&2
}

_servers_start_mariadb() {
    local dir port user install
    if [ ! -x /usr/sbin/mariadbd ]; then
        _servers_apt mariadb-server
    fi
    install=$(command -v mariadb-install-db || command -v mysql_install_db)
    user=$(id -un); [ "$(id -u)" = 0 ] && user=mysql
    dir=$(_servers_dir "$user")
    port=$(_servers_free_port)
    _servers_as "$user" "$install" --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
        --skip-test-db >"$dir/install.log" 2>&1
    local as=()
    [ "$(id -u)" = 0 ] && as=(setpriv --reuid="$user" --regid="$user" --init-groups --)
    # started directly (setpriv execs it), so $! is the server's own PID
    "${as[@]}" /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --port="$port" \
        --bind-address=127.0.0.1 --socket="$dir/mariadb.sock" --pid-file="$dir/mariadb.pid" \
        --innodb-flush-log-at-trx-commit=0 --skip-log-bin --max-connections=200 >"$dir/server.log" 2>&1 &
    SERVERS_MARIADB_PID=$!
    SERVERS_MARIADB_DIR=$dir
    for _ in $(seq 60); do _servers_port_open "$port" && break; sleep 0.25; done
    if ! _servers_port_open "$port"; then
        echo "servers: MariaDB did not start; its log: $dir/server.log" >&2
        return 1
    fi
    export PROVISION_TEST_MARIADB_URL="mysql+pymysql://root@127.0.0.1:$port"
    echo "servers: started a throwaway MariaDB on 127.0.0.1:$port ($dir)" >&2
}

servers_start() {
    if [ "${PROVISION_TEST_OWN_SERVERS:-0}" = 1 ] || ! _servers_port_open 5432; then
        _servers_start_postgresql
    fi
    if [ "${PROVISION_TEST_OWN_SERVERS:-0}" = 1 ] || ! _servers_port_open 3306; then
        _servers_start_mariadb
    fi
}

servers_stop() {
    if [ -n "${SERVERS_PG_DIR:-}" ]; then
        _servers_as "$SERVERS_PG_USER" "$SERVERS_PG_BIN/pg_ctl" -D "$SERVERS_PG_DIR/data" -m immediate stop \
            >/dev/null 2>&1 || true
        rm -rf "$SERVERS_PG_DIR"
        SERVERS_PG_DIR=
    fi
    if [ -n "${SERVERS_MARIADB_PID:-}" ]; then
        kill "$SERVERS_MARIADB_PID" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$SERVERS_MARIADB_PID" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$SERVERS_MARIADB_PID" 2>/dev/null || true
        rm -rf "$SERVERS_MARIADB_DIR"
        SERVERS_MARIADB_PID=
    fi
}
