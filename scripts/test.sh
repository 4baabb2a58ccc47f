#!/usr/bin/env bash
# Project test harness: gofmt check, go vet, a throwaway PostgreSQL, go test.
#
# Usage: scripts/test.sh [go test args...]
#   TESTFLAGS                extra go test flags (split on whitespace), e.g. TESTFLAGS='-run Foo'
#   NODUS_TEST_POSTGRES_URL  use this server as is instead of starting a throwaway one
#   CI=true                  missing PostgreSQL binaries or Chromium are an error instead of a warning
#   NODUS_TEST_OUTPUT        where tests write what a person looks at (the browser test's
#                            screenshots); default out/ at the repository's root
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- gofmt -------------------------------------------------------------------
# Tracked and untracked (not ignored) Go files; vendored code and testdata
# (which may hold deliberately malformed Go) are not ours to format.
list_go_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard -- '*.go'
	else
		find . -name '*.go' -print0
	fi | tr '\0' '\n' | sed 's|^\./||' |
		grep -Ev '(^|/)(vendor|third_party|testdata|node_modules)/' |
		while IFS= read -r f; do if [[ -f $f ]]; then printf '%s\n' "$f"; fi; done
}

mapfile -t go_files < <(list_go_files)
if ((${#go_files[@]})); then
	# gofmt also exits non-zero (with errors on stderr) on files that do not parse.
	unformatted=$(gofmt -l "${go_files[@]}") || die "gofmt failed (syntax errors?)"
	if [[ -n $unformatted ]]; then
		log "these files are not gofmt-ed (run 'make fmt'):"
		printf '%s\n' "$unformatted" >&2
		exit 1
	fi
fi

# --- go vet ------------------------------------------------------------------
go vet ./...

# --- PostgreSQL ----------------------------------------------------------------
# Directory holding initdb/pg_ctl/postgres, or nothing. Keep in sync with .ci/run.
find_pg_bindir() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		if [[ -n $d && -x $d/initdb ]]; then echo "$d"; return; fi
	fi
	# Debian/Ubuntu keep server binaries off PATH; take the highest version.
	d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V |
		while IFS= read -r b; do if [[ -x $b/initdb ]]; then echo "$b"; fi; done | tail -n 1)
	if [[ -n $d ]]; then echo "$d"; return; fi
	if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; fi
}

# A TCP port on 127.0.0.1 that nothing listens on: probe upwards from a random base.
free_port() {
	local p=$((20000 + RANDOM % 30000)) i
	for ((i = 0; i < 200; i++, p++)); do
		# The connect fails (refused) only if the port is free.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free TCP port found"
}

pg_tmp=""
pg_bindir=""
pg_user=""    # set when running as root: the cluster must not be owned by root
pg_started="" # set once pg_ctl start has been attempted

# Run a command as the cluster owner (from inside the temp dir, so the
# unprivileged user never needs access to our cwd).
as_pg_user() {
	if [[ -z $pg_user ]]; then
		(cd "$pg_tmp" && "$@")
	elif command -v runuser >/dev/null 2>&1; then
		(cd "$pg_tmp" && runuser -u "$pg_user" -- "$@")
	else
		(cd "$pg_tmp" && su "$pg_user" -s /bin/sh -c "$(printf '%q ' "$@")")
	fi
}

# Invoked via trap (shellcheck cannot see that).
# shellcheck disable=SC2317
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $pg_tmp && -d $pg_tmp ]]; then
		if [[ -n $pg_started ]]; then
			# If interrupted during pg_ctl start, give the postmaster a moment to
			# write its pid file, or pg_ctl stop cannot find it.
			local i
			for ((i = 0; i < 10; i++)); do
				[[ -f $pg_tmp/data/postmaster.pid ]] && break
				sleep 0.2
			done
			if [[ -f $pg_tmp/data/postmaster.pid ]]; then
				as_pg_user "$pg_bindir/pg_ctl" stop -D "$pg_tmp/data" -m immediate -w >/dev/null 2>&1 ||
					log "WARNING: could not stop PostgreSQL in $pg_tmp"
			fi
		fi
		rm -rf "$pg_tmp" || log "WARNING: could not remove $pg_tmp"
	fi
	exit "$rc"
}

start_pg() {
	if ((EUID == 0)); then
		if id -u postgres >/dev/null 2>&1; then
			pg_user=postgres
		else
			pg_user=nodustest
			id -u "$pg_user" >/dev/null 2>&1 ||
				useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user" ||
				id -u "$pg_user" >/dev/null 2>&1 || # created concurrently
				die "cannot create user $pg_user to run PostgreSQL as"
		fi
	fi

	trap cleanup EXIT
	# Turn signals into a normal exit so the EXIT trap runs exactly once.
	trap 'exit 130' INT
	trap 'exit 143' TERM

	# As root, use /tmp: a TMPDIR under e.g. /root would be unreachable for $pg_user.
	if [[ -n $pg_user ]]; then
		pg_tmp=$(mktemp -d /tmp/nodus-pg.XXXXXX)
		chown "$pg_user:" "$pg_tmp"
	else
		pg_tmp=$(mktemp -d "${TMPDIR:-/tmp}/nodus-pg.XXXXXX")
	fi

	as_pg_user "$pg_bindir/initdb" -D "$pg_tmp/data" -A trust -U nodus -E UTF8 \
		--no-sync --no-instructions >"$pg_tmp/initdb.log" 2>&1 ||
		{ cat "$pg_tmp/initdb.log" >&2; die "initdb failed"; }

	local port
	port=$(free_port)
	# Durability is pointless for a throwaway test cluster; speed matters.
	local opts="-c listen_addresses=127.0.0.1 -c port=$port"
	opts+=" -c unix_socket_directories=$pg_tmp"
	opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	opts+=" -c max_connections=200"
	pg_started=1
	as_pg_user "$pg_bindir/pg_ctl" start -w -t 60 -D "$pg_tmp/data" \
		-l "$pg_tmp/postgres.log" -o "$opts" >/dev/null ||
		{ tail -n 30 "$pg_tmp/postgres.log" >&2 || true; die "PostgreSQL did not start"; }

	export NODUS_TEST_POSTGRES_URL="postgres://nodus@127.0.0.1:$port/postgres?sslmode=disable"
	local version
	version=$("$pg_bindir/postgres" --version | sed 's/^postgres (PostgreSQL) //')
	log "PostgreSQL: throwaway cluster, PostgreSQL $version from $pg_bindir," \
		"on 127.0.0.1:$port, data in $pg_tmp${pg_user:+ (run as $pg_user)}"
}

if [[ -n ${NODUS_TEST_POSTGRES_URL:-} ]]; then
	# Hide a password, if any, from the log.
	log "PostgreSQL: using NODUS_TEST_POSTGRES_URL from the environment:" \
		"$(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$NODUS_TEST_POSTGRES_URL")"
else
	pg_bindir=$(find_pg_bindir)
	if [[ -n $pg_bindir ]]; then
		start_pg
	elif [[ ${CI:-} == true ]]; then
		die "PostgreSQL: no server binaries (initdb) found and CI=true; install PostgreSQL (e.g. apt-get install postgresql) or set NODUS_TEST_POSTGRES_URL"
	else
		log "WARNING: PostgreSQL: no server binaries (initdb) found and NODUS_TEST_POSTGRES_URL is unset;" \
			"PostgreSQL tests will be SKIPPED. Install PostgreSQL or set NODUS_TEST_POSTGRES_URL."
	fi
fi

# --- Chromium ------------------------------------------------------------------
# The browser test (cmd/nodus/web_browser_test.go) drives an installed
# Chromium; nothing downloads one. As root it is installed from the
# distribution when missing; otherwise the test skips, except under CI=true,
# where it fails. Keep the names in sync with .ci/run and chromium() there.
find_chromium() {
	local b
	for b in chromium chromium-browser google-chrome google-chrome-stable; do
		if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return; fi
	done
}

if [[ -z $(find_chromium) ]]; then
	if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
		log "Chromium: not installed; installing it with apt-get (for the browser test)"
		export DEBIAN_FRONTEND=noninteractive
		{ apt-get update && apt-get install -y --no-install-recommends chromium; } >&2 ||
			die "Chromium: apt-get install chromium failed"
	elif [[ ${CI:-} == true ]]; then
		die "Chromium: not installed and CI=true; install it (apt-get install chromium)"
	else
		log "WARNING: Chromium: not installed; the browser test will be SKIPPED. Install it (apt-get install chromium)."
	fi
fi

# --- espeak-ng -----------------------------------------------------------------
# The recordings tests (internal/recordings, cmd/nodus/recordings_test.go)
# make real speech with espeak-ng. As root it is installed from the
# distribution when missing; otherwise those tests skip, except under
# CI=true, where they fail. Keep in sync with .ci/run.
if ! command -v espeak-ng >/dev/null 2>&1; then
	if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
		log "espeak-ng: not installed; installing it with apt-get (for the recordings tests)"
		export DEBIAN_FRONTEND=noninteractive
		{ apt-get update && apt-get install -y --no-install-recommends espeak-ng; } >&2 ||
			die "espeak-ng: apt-get install espeak-ng failed"
	elif [[ ${CI:-} == true ]]; then
		die "espeak-ng: not installed and CI=true; install it (apt-get install espeak-ng)"
	else
		log "WARNING: espeak-ng: not installed; the recordings tests will be SKIPPED. Install it (apt-get install espeak-ng)."
	fi
fi

# --- go test -----------------------------------------------------------------
# Verbose output goes to a file; the terminal gets everything except the
# per-test RUN/PASS chatter, then a count of the PostgreSQL subtests, so a
# reader can see they ran rather than skipped.
read -ra testflags <<<"${TESTFLAGS:-}"
test_log=$(mktemp "${TMPDIR:-/tmp}/nodus-test.XXXXXX")
status=0
go test -count=1 -race -v "${testflags[@]}" ./... "$@" >"$test_log" 2>&1 || status=$?
grep -Ev '^=== (RUN|PAUSE|CONT|NAME)|^ *--- PASS|^PASS$' "$test_log" || true
pg_passed=$(grep -Ec -- '--- PASS: .*/postgres ' "$test_log" || true)
pg_skipped=$(grep -Ec -- '--- SKIP: .*/postgres ' "$test_log" || true)
all_passed=$(grep -Ec -- '--- PASS: ' "$test_log" || true)
all_failed=$(grep -Ec -- '--- FAIL: ' "$test_log" || true)
all_skipped=$(grep -Ec -- '--- SKIP: ' "$test_log" || true)
rm -f "$test_log"
log "PostgreSQL subtests: $pg_passed passed, $pg_skipped skipped"
echo "tests: $all_passed passed, $all_failed failed, $all_skipped skipped"

# --- row-level security ------------------------------------------------------
# The PostgreSQL subtests again, connected as a least-privilege role that
# row-level security binds (storetest.RLSEnv), as production's roles are:
# a query missing its tenant scope then finds nothing and its test fails,
# where the test server's superuser would have seen every row. The SQLite
# subtests are not repeated; no -race, which the first pass had.
rls_log=$(mktemp "${TMPDIR:-/tmp}/nodus-test-rls.XXXXXX")
rls_status=0
NODUS_TEST_POSTGRES_RLS=1 go test -count=1 -v "${testflags[@]}" ./... "$@" >"$rls_log" 2>&1 || rls_status=$?
if ((rls_status != 0)); then
	grep -Ev '^=== (RUN|PAUSE|CONT|NAME)|^ *--- PASS|^PASS$' "$rls_log" || true
fi
rls_passed=$(grep -Ec -- '--- PASS: .*/postgres ' "$rls_log" || true)
rm -f "$rls_log"
log "PostgreSQL subtests under row-level security: $rls_passed passed"
if ((rls_status != 0)); then
	log "the row-level security pass failed"
	((status != 0)) || status=$rls_status
fi
exit "$status"
