#!/usr/bin/env bash
# Engineering checks, run by scripts/test.sh with the other test/t_*.sh:
#   format-check   clang-format drift in src/ and provider/src/ (make format-check)
#   cppcheck       make lint-cppcheck
#   clang-tidy     make lint-tidy
#   symbols        every symbol lead_enrich.so leaves undefined is one the
#                  server or a linked library defines (a shared object links
#                  with undefined symbols, and fails only when loaded)
#   provider-asan  the provider's tests under ASan/LSan/UBSan
#                  (scripts/check_provider_asan.sh, about 20 s)
#   shell          every shell script of the tree parses (bash -n), with
#                  no error or warning from shellcheck (the bench's scripts
#                  run in no test: this is what checks them)
# One "ok - name" / "not ok - name" line per check, then "N passed, N
# failed"; exits non-zero on any failure.  Installs clang-format,
# clang-tidy, cppcheck and shellcheck when they are missing and it runs as
# root.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# Static analysis reads Debian's PostgreSQL 15 headers whatever version the
# suite runs on: the suppressions are made for them, and other versions'
# macros (PG_TRY in 18) lead cppcheck down other paths.
export PATH="/usr/lib/postgresql/15/bin:$PATH"
pg_config=${LE_PG_CONFIG:-$(command -v pg_config)}

need=()
command -v clang-format >/dev/null || need+=(clang-format)
command -v clang-tidy >/dev/null || need+=(clang-tidy)
command -v cppcheck >/dev/null || need+=(cppcheck)
command -v shellcheck >/dev/null || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "installing ${need[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
	else
		echo "missing: ${need[*]} (sudo apt-get install -y ${need[*]})" >&2
	fi
fi

passed=0
failed=0
logdir=${LE_RUNDIR:-$repo/.run}/lint
mkdir -p "$logdir"

# check NAME CMD...: run one check, its output in $logdir/NAME.log,
# shown (the first 200 lines) when it fails.
check() {
	local name=$1 start rc
	shift
	start=$(date +%s)
	"$@" >"$logdir/$name.log" 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		echo "ok - $name ($(($(date +%s) - start)) s)"
		passed=$((passed + 1))
	else
		head -200 "$logdir/$name.log"
		echo "not ok - $name (exit $rc, full output in $logdir/$name.log)"
		failed=$((failed + 1))
	fi
}

check format-check make -s -C "$repo" PG_CONFIG="$pg_config" format-check
check cppcheck make -s -C "$repo" PG_CONFIG="$pg_config" lint-cppcheck
check clang-tidy make -s -C "$repo" PG_CONFIG="$pg_config" lint-tidy
# symbols_resolved: lead_enrich.so's undefined symbols, less those the
# postgres binary exports and those of a versioned library (name@LIB).
symbols_resolved() {
	local so=$repo/lead_enrich.so bin
	# the server the suite built it for (the static checks read 15's headers)
	bin=${LE_PGBIN:-$("$pg_config" --bindir)}/postgres
	[ -f "$so" ] || make -s -C "$repo" PG_CONFIG="$pg_config" >/dev/null || return 1
	missing=$(comm -23 <(nm -D --undefined-only "$so" | awk '$1 == "U" {print $2}' | grep -v '@' | sort -u) \
		<(nm -D --defined-only "$bin" | awk '{print $3}' | sort -u))
	if [ -n "$missing" ]; then
		echo "undefined in lead_enrich.so and not exported by $bin:"
		echo "$missing"
		return 1
	fi
}
check symbols symbols_resolved
# Its own cluster, reached by a socket in its own directory (no TCP port),
# so it cannot collide with the suite's cluster.
check provider-asan env LE_RUNDIR="${LE_RUNDIR:-$repo/.run}/asan" \
	bash "$repo/scripts/check_provider_asan.sh"
# shell_scripts: the tree's shell scripts (git's list; without git, every
# *.sh but the run directories'), each parsed, then shellcheck at warning
# level (its style and info notes are not errors), sourced files followed.
shell_scripts() {
	local files=() f rc=0
	cd "$repo" || return 1
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		mapfile -t files < <(git ls-files -- '*.sh' .ci/run)
	else
		mapfile -t files < <(find . -name '*.sh' -not -path './.run*' -not -path './debian/*/*' | sort; echo .ci/run)
	fi
	for f in "${files[@]}"; do
		bash -n "$f" || rc=1
	done
	shellcheck -S warning -x "${files[@]}" || rc=1
	return $rc
}
check shell shell_scripts

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
