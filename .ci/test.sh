#!/usr/bin/env bash
# Runs every Concord test: static checks, then `go test -race ./...`,
# including the PostgreSQL, Redis and real-browser (Chromium) tests.
# It installs or starts what those tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		echo "need root to run: $*" >&2; return 1; fi
}

apt_updated=""
apt_install() {
	if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# --- Chromium, for the real-browser tests.
if ! command -v chromium >/dev/null; then
	log "installing Debian's chromium"
	apt_install chromium
fi

# --- pdftotext, to read back the agreement PDFs in their test.
if ! command -v pdftotext >/dev/null; then
	log "installing poppler-utils"
	apt_install poppler-utils
fi

# --- PostgreSQL on 127.0.0.1:5432 with a `test` database.
export CONCORD_TEST_DATABASE_URL="${CONCORD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up; then
	if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
		log "installing PostgreSQL"
		apt_install postgresql
	fi
	log "starting PostgreSQL"
	for v in /etc/postgresql/*; do
		as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true
	done
	for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if pg_up && command -v psql >/dev/null; then
	if ! psql "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
		psql "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable" -c "create database test" >/dev/null 2>&1 ||
			as_root su postgres -c "createdb test" || true
	fi
fi

# --- Redis on 127.0.0.1:6379.
export CONCORD_TEST_REDIS_URL="${CONCORD_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
redis_up() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
if ! redis_up; then
	if ! command -v redis-server >/dev/null; then
		log "installing Redis"
		apt_install redis-server
	fi
	log "starting Redis"
	mkdir -p /tmp/concord-redis
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/concord-redis || true
	for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
fi

# --- Static checks.
log "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi
log "go vet"
go vet ./...
# Deployed on Linux, but developers build on macOS and Windows too.
log "go vet (windows, darwin)"
GOOS=windows go vet ./...
GOOS=darwin go vet ./...

# --- Tests. CI=true makes a missing PostgreSQL, Redis or Chromium a failure.
# The media tests measure packet loss and recovery times over real and
# virtual networks; run beside the browser tests on two cores they starve
# each other, so media runs alone first, then everything else.
log "go test -race ./media/..."
go test -race -count=1 -timeout 10m ./media/...
log "go test -race (everything else)"
go test -race -count=1 -timeout 15m $(go list ./... | grep -v '/media\(/\|$\)')
