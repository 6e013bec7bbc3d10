# Starts a throwaway PostgreSQL cluster as an unprivileged user on a free loopback port and
# exports ATTEST_TEST_POSTGRES_URL. Sourced by .ci/test; usable by hand:
#   source .ci/postgres.sh && start_postgres   (and stop_postgres when done)

start_postgres() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "postgres: no PostgreSQL server found under /usr/lib/postgresql" >&2
        return 1
    fi
    # initdb refuses to run as root: as root, run the cluster as a dedicated system user.
    local as=()
    ATTEST_PG_DATA="$(mktemp -d /tmp/attest-pg.XXXXXX)"
    if [ "$(id -u)" = 0 ]; then
        local user=attest-pg
        id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
        chown "$user" "$ATTEST_PG_DATA"
        as=(runuser -u "$user" --)
    fi
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "${as[@]}" "$bin/initdb" -D "$ATTEST_PG_DATA/data" -U attest --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    # Durability off: this cluster lives for one run and speed is what matters.
    "${as[@]}" "$bin/pg_ctl" -D "$ATTEST_PG_DATA/data" -l "$ATTEST_PG_DATA/log" -w start \
        -o "-p $port -k $ATTEST_PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >/dev/null
    ATTEST_PG_BIN="$bin"
    ATTEST_PG_AS="${as[*]}"
    export ATTEST_PG_DATA ATTEST_PG_BIN ATTEST_PG_AS
    export ATTEST_TEST_POSTGRES_URL="postgres://attest@127.0.0.1:$port/postgres"
    echo "postgres: running on 127.0.0.1:$port (data in $ATTEST_PG_DATA)"
}

stop_postgres() {
    if [ -n "${ATTEST_PG_DATA:-}" ] && [ -d "$ATTEST_PG_DATA/data" ]; then
        $ATTEST_PG_AS "$ATTEST_PG_BIN/pg_ctl" -D "$ATTEST_PG_DATA/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$ATTEST_PG_DATA"
    fi
}
