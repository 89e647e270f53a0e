#!/usr/bin/env bash
# Makes sure the services the tests talk to are up on this machine: PostgreSQL on 127.0.0.1:5432
# (the tests fall back to an embedded PostgreSQL when it is not) and Redis on 127.0.0.1:6379
# (required by the rate-limit tests). It starts what is installed but stopped and, as root,
# installs Redis when it is missing. Anything it cannot do it reports, and the tests then say
# what is missing.
set -uo pipefail

say() { echo "services: $*" >&2; }

# wait_for NAME CMD...: runs CMD until it succeeds, for up to 30 s.
wait_for() {
	local name=$1
	shift
	for _ in $(seq 1 60); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	say "$name did not come up within 30 s"
	return 1
}

is_root() { [ "$(id -u)" = 0 ]; }

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
	if is_root && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
		version=$(ls /etc/postgresql | sort -V | tail -n 1)
		say "starting PostgreSQL $version"
		pg_ctlcluster --skip-systemctl-redirect "$version" main start && wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
	else
		say "PostgreSQL is not running on 127.0.0.1:5432; the tests will use an embedded one"
	fi
fi

if ! { command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; }; then
	if ! command -v redis-server >/dev/null && is_root && command -v apt-get >/dev/null; then
		say "installing redis-server"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } >&2 ||
			say "could not install redis-server"
	fi
	if command -v redis-server >/dev/null; then
		say "starting Redis"
		dir=/var/lib/redis log=/var/log/redis/ci.log
		if ! is_root; then dir=${TMPDIR:-/tmp}/leadmarket-redis log=$dir/redis.log; fi
		mkdir -p "$dir" "$(dirname "$log")"
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
			--dir "$dir" --logfile "$log" && wait_for Redis redis-cli -h 127.0.0.1 ping
	else
		say "Redis is required by the rate-limit tests: install redis-server (or set TEST_REDIS_URL)"
	fi
fi
exit 0
