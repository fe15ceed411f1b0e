#!/usr/bin/env bash
# Benchmark lead_provider with wrk on loopback: requests per second and
# p50/p99 latency for balance calls and for 50-domain enrichment batches.
#
# Usage:
#   bench/provider.sh [--bin provider/lead_provider] --db CONNINFO [URL]
#     With URL (or LEAD_PROVIDER_URL): benchmark that running provider (its
#     database must be CONNINFO, to draw domains and add credits).
#     Without: start "serve" on a free loopback port (running "init" first if
#     schema provider is missing) and stop it afterwards.
#   Environment: DURATION (10s), CONNECTIONS (16), WRK_THREADS (2),
#   SERVE_THREADS (4), BATCH (50).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
bin="$repo/provider/lead_provider"
db="${LEAD_PROVIDER_DB:-dbname=lead_provider}"
url="${LEAD_PROVIDER_URL:-}"
duration="${DURATION:-10s}"
conns="${CONNECTIONS:-16}"
wthreads="${WRK_THREADS:-2}"
sthreads="${SERVE_THREADS:-4}"
batch="${BATCH:-50}"

while [ $# -gt 0 ]; do
	case "$1" in
		--bin) bin="$2"; shift 2 ;;
		--db) db="$2"; shift 2 ;;
		-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
		-*) echo "unknown option $1" >&2; exit 2 ;;
		*) url="$1"; shift ;;
	esac
done

command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
work="$(mktemp -d)"
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$url" ]; then
	if [ "$(psql "$db" -XAtqc "select to_regclass('provider.org') is not null" 2>/dev/null)" != "t" ]; then
		"$bin" init --db "$db"
	fi
	port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
	"$bin" serve --listen 127.0.0.1 --port "$port" --db "$db" --threads "$sthreads" 2>"$work/serve.log" &
	pid=$!
	for _ in $(seq 100); do
		grep -q "listening on" "$work/serve.log" 2>/dev/null && break
		sleep 0.1
	done
	grep -q "listening on" "$work/serve.log" || { cat "$work/serve.log" >&2; exit 1; }
	url="http://127.0.0.1:$port"
fi
case "$url" in
	http://127.0.0.1*|http://localhost*|http://\[::1\]*) ;;
	*) echo "refusing to benchmark a non-loopback URL: $url" >&2; exit 2 ;;
esac

token="bench-$(date +%s)-$$"
"$bin" credits add "$token" 1000000000 --db "$db" >/dev/null
psql "$db" -XAtqc "select domain from provider.org order by md5(clearbit_id) limit 2000" > "$work/domains.txt"

run() {
	local name="$1" mode="$2"
	local out
	out="$(wrk -t"$wthreads" -c"$conns" -d"$duration" --latency -s "$here/provider.lua" \
		"$url" -- "$mode" "$token" "$work/domains.txt" "$batch")"
	local rps p50 p99 errs non2xx
	rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
	p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
	p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
	errs="$(awk '/^rpc-errors:/ {print $2}' <<<"$out")"
	non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
	printf '%-28s %10s req/s   p50 %8s   p99 %8s   errors %s%s\n' "$name" "$rps" "$p50" "$p99" \
		"${errs:-0}" "${non2xx:+ (non-2xx $non2xx)}"
}

echo "lead_provider at $url: wrk -t$wthreads -c$conns -d$duration --latency (serve threads: $sthreads)"
run "balance" balance
run "enrich ($batch domains/call)" enrich
"$bin" accounts --db "$db" | awk -v t="$token" '$1 == t {print "bench account: balance " $2 ", spent " $3}'
