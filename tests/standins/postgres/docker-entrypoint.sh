#!/bin/bash
# A small re-implementation of the official postgres image's entrypoint.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%F %T UTC')" "$*" >&2; }

# file_env VAR [DEFAULT]: VAR from the environment, or from the file VAR_FILE.
file_env() {
	local var=$1 file_var="${1}_FILE" def=${2:-}
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		log "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	local val=$def
	if [ -n "${!var:-}" ]; then
		val=${!var}
	elif [ -n "${!file_var:-}" ]; then
		val=$(<"${!file_var}")
	fi
	export "$var"="$val"
	unset "$file_var"
}

# First argument a flag (e.g. `-c shared_buffers=256MB`): run postgres with it.
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

# As root: fix ownership of PGDATA and the socket directory, then re-run this
# script as the postgres user.
if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	chown postgres:postgres /var/run/postgresql
	chmod 3777 /var/run/postgresql
	export HOME=/var/lib/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

if [ -s "$PGDATA/PG_VERSION" ]; then
	log "PostgreSQL database directory appears to contain a database; skipping initialization"
else
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
		cat >&2 <<-'EOM'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.
		EOM
		exit 1
	fi
	if [ "$POSTGRES_HOST_AUTH_METHOD" = 'trust' ]; then
		log "warning: POSTGRES_HOST_AUTH_METHOD=trust: every host connection is allowed without a password"
	fi

	log "initializing database in $PGDATA"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of flags
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		$POSTGRES_INITDB_ARGS
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

	# Temporary server on the socket only, to create the database and run
	# /docker-entrypoint-initdb.d scripts.
	export PGPASSWORD="$POSTGRES_PASSWORD"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
	psql_cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		exists=$("${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
			SELECT 1 FROM pg_database WHERE datname = :'db' ;
		EOSQL
		)
		if [ -z "${exists//[[:space:]]/}" ]; then
			"${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
				CREATE DATABASE :"db" ;
			EOSQL
		fi
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		# shellcheck disable=SC1090 # init scripts are the user's, sourced like upstream
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
			*.sql) log "running $f"; "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
			*.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB" ;;
			*) if [ -e "$f" ]; then log "ignoring $f"; fi ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSWORD
	log "PostgreSQL init process complete; ready for start up"
fi

exec "$@"
