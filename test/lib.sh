# shellcheck shell=bash
# Shared by the scripted tests (test/t_*.sh): the harness's settings and
# set-up (scripts/common.sh), the "ok - ..." / "not ok - ..." lines and
# their tally, and small helpers.  A test sources it first, then ends with
# `finish`, which prints the "N passed, N failed" line scripts/test.sh reads
# and exits non-zero on any failure.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
le_deps >/dev/null
set +e
set -o pipefail

passed=0
failed=0

# not_ok_filter: what a failure's diagnostic goes through before it is
# printed (a test that handles a secret replaces it here).
not_ok_filter() { cat; }

ok() {
	echo "ok - $1"
	passed=$((passed + 1))
}
# not_ok DESCRIPTION [diagnostic]: the diagnostic's first 15 lines, as
# "#   " comments
not_ok() {
	echo "not ok - $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | not_ok_filter | head -15 | sed 's/^/#   /'
	failed=$((failed + 1))
}
# check DESCRIPTION ACTUAL EXPECTED
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', expected '$3'"; fi
}
# check_true DESCRIPTION VALUE [diagnostic]: VALUE must be "t"
check_true() {
	if [ "$2" = t ]; then ok "$1"; else not_ok "$1" "${3:-got '$2'}"; fi
}

q() { le_psql -d "$1" -tA -c "$2" 2>&1; }
prov() { le_psql -d lead_provider -tA -c "$1" 2>&1; }

# wait_for SECONDS DB SQL EXPECTED [query function]: poll until the query
# (run by q, or the function named) returns EXPECTED
wait_for() {
	local deadline=$((SECONDS + $1)) v f=${5:-q}
	while :; do
		v=$($f "$2" "$3")
		[ "$v" = "$4" ] && return 0
		[ $SECONDS -ge $deadline ] && { echo "#   waited $1 s; last value: $v"; return 1; }
		sleep 0.25
	done
}

# wait_ready SECONDS: until the cluster accepts connections
wait_ready() {
	local deadline=$((SECONDS + $1))
	until le_psql -d postgres -tAc "SELECT 1" >/dev/null 2>&1; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.2
	done
}

# finish: the tally line, and the exit status
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit $?
}
