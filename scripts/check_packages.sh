#!/usr/bin/env bash
# The Debian packages end to end: build them (debian/, dpkg-buildpackage -b)
# in a copy of the tree outside the clone, run lintian, install them into
# the system, start a throwaway cluster (as the cluster user, like the
# harness) on the installed extension and the provider from the installed
# binary as its system user, run the quick start's enrichment and the
# pg_regress suite (make installcheck) against the installed files, then
# purge the packages and leave the system as it was.
#
# Root only (it installs packages).  Prints "ok - ..." / "not ok - ..." and
# a final "N passed, N failed"; exits non-zero on any failure.
#
# Ports: LE_PKG_PGPORT, LE_PKG_PROVIDER_PORT, LE_PKG_FAULT_PORT (default:
# LE_PGPORT, LE_PROVIDER_PORT, LE_FAULT_PORT + 8, so that it runs beside
# scripts/test.sh's own cluster and provider).  LE_PKG_KEEP=1 keeps the
# build directory.
source "$(dirname "$0")/common.sh"
set +e
set -o pipefail

passed=0
failed=0
ok() {
	echo "ok - $1"
	passed=$((passed + 1))
}
not_ok() {
	echo "not ok - $1"
	[ -n "${2:-}" ] && printf '#   %s\n' "$2"
	failed=$((failed + 1))
}
# check DESCRIPTION ACTUAL EXPECTED
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', expected '$3'"; fi
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

if [ "$(id -u)" != 0 ]; then
	echo "# SKIP: check_packages.sh installs packages into the system: run it as root"
	finish
fi

PKG_PGPORT=${LE_PKG_PGPORT:-$((LE_PGPORT + 8))}
PKG_PROVIDER_PORT=${LE_PKG_PROVIDER_PORT:-$((LE_PROVIDER_PORT + 8))}
PKG_FAULT_PORT=${LE_PKG_FAULT_PORT:-$((LE_FAULT_PORT + 8))}
PKGS=(postgresql-"$LE_PGVERSION"-lead-enrich lead-provider)
started=$SECONDS

# Installed before this script? Then it must not touch them.
for p in "${PKGS[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		not_ok "package $p is not installed beforehand" "purge it first: apt-get purge $p"
		finish
	fi
done
user_existed=0
id lead_provider >/dev/null 2>&1 && user_existed=1

# What building and checking need; the cluster user (le_deps).
le_deps debhelper dpkg-dev fakeroot lintian postgresql-server-dev-all systemd >/dev/null
PGBIN=/usr/lib/postgresql/$LE_PGVERSION/bin

work=$(mktemp -d /tmp/lead_enrich-pkg.XXXXXX)
chmod 755 "$work"
rundir=$work/run
provider_pid=
cleanup() {
	[ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null
	if [ -f "$rundir/pgdata/postmaster.pid" ]; then
		as_run_user "$PGBIN/pg_ctl" -D "$rundir/pgdata" -m immediate stop >/dev/null 2>&1
	fi
	apt-get purge -y -q "${PKGS[@]}" >/dev/null 2>&1
	[ -f "$work/saved.tar" ] && tar -xPf "$work/saved.tar"
	[ "$user_existed" = 0 ] && id lead_provider >/dev/null 2>&1 && userdel lead_provider
	[ "${LE_PKG_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# 1. build, in a copy of the tree (tracked and new files, as they are now)
version=$(dpkg-parsechangelog -l "$LE_REPO/debian/changelog" -S Version)
src=$work/lead-enrich-${version%-*}
mkdir -p "$src"
(cd "$LE_REPO" && git ls-files -co --exclude-standard -z | tar --null -cf - -T -) | tar -xf - -C "$src"
le_log "dpkg-buildpackage -us -uc -b in $src"
t0=$SECONDS
# (the system's PATH: LE_PGBIN's PostgreSQL is not the packages' one; a
# package for every postgresql-server-dev-NN installed)
if (cd "$src" && env PATH=/usr/sbin:/usr/bin:/sbin:/bin PG_SUPPORTED_VERSIONS=installed PG_UPDATECONTROL=yes \
	dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	ok "dpkg-buildpackage -b builds ($((SECONDS - t0)) s)"
else
	not_ok "dpkg-buildpackage -b builds" "see below"
	tail -40 "$work/build.log" | sed 's/^/#   /'
	finish
fi
arch=$(dpkg --print-architecture)
debs=()
for p in "${PKGS[@]}"; do
	deb=$work/${p}_${version}_$arch.deb
	if [ -f "$deb" ]; then ok "package $p built"; else not_ok "package $p built" "no $deb"; fi
	debs+=("$deb")
done
# every version pg_buildext built for (debian/pgversions)
for deb in "$work"/postgresql-*-lead-enrich_"${version}"_"$arch".deb; do
	echo "# built $(basename "$deb")"
done

# 2. lintian: no error, no warning (the overrides say why)
le_log "lintian"
chown -R "$LE_RUN_USER" "$work"
as_run_user lintian --pedantic --info --fail-on error,warning \
	"$work/lead-enrich_${version}_$arch.changes" >"$work/lintian.log" 2>&1
rc=$?
sed 's/^/#   /' "$work/lintian.log"
if [ "$rc" = 0 ] && ! grep -qE '^[EW]: ' "$work/lintian.log"; then
	ok "lintian: no errors or warnings"
else
	not_ok "lintian: no errors or warnings"
fi

# 3. install into the system; files of a source install (make install, as
#    scripts/test.sh does) where the package goes are set aside and put back
#    after the purge
pkglibdir=$("$PGBIN/pg_config" --pkglibdir)
sharedir=$("$PGBIN/pg_config" --sharedir)
saved=()
for f in "$pkglibdir/lead_enrich.so" "$sharedir/extension/lead_enrich.control" \
	"$sharedir"/extension/lead_enrich--*.sql; do
	[ -f "$f" ] && saved+=("$f")
done
if [ ${#saved[@]} -gt 0 ]; then
	echo "# setting aside ${#saved[@]} files of a source install until the purge"
	tar -cPf "$work/saved.tar" "${saved[@]}"
fi
le_log "apt-get install ${debs[*]}"
export DEBIAN_FRONTEND=noninteractive
if apt-get install -y -q --no-install-recommends "${debs[@]}" >"$work/install.log" 2>&1; then
	ok "apt-get install ./${PKGS[0]}_*.deb ./lead-provider_*.deb"
else
	not_ok "apt-get install" "$(tail -5 "$work/install.log")"
	finish
fi
[ -f "$pkglibdir/lead_enrich.so" ] && [ -f "$sharedir/extension/lead_enrich.control" ] &&
	[ "$(dpkg -S "$pkglibdir/lead_enrich.so" 2>/dev/null | cut -d: -f1)" = "${PKGS[0]}" ]
check "the extension's files belong to ${PKGS[0]}" $? 0
check "lead_provider system user, no login shell" \
	"$(getent passwd lead_provider | cut -d: -f7)" /usr/sbin/nologin
check "/etc/lead-provider/lead-provider.conf: root:lead_provider 640 (it may hold a password)" \
	"$(stat -c '%U:%G %a' /etc/lead-provider/lead-provider.conf 2>&1)" "root:lead_provider 640"
verify=$(systemd-analyze verify /lib/systemd/system/lead-provider.service 2>&1)
check "systemd-analyze verify lead-provider.service" "$verify" ""
exposure=$(systemd-analyze security --offline=true --no-pager lead-provider.service 2>&1 |
	sed -n 's/.*Overall exposure level for lead-provider.service: \([0-9.]*\).*/\1/p')
echo "# systemd-analyze security: exposure $exposure (0 = fully sandboxed, 10 = not at all)"
if [ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
	ok "lead-provider.service hardened (exposure $exposure <= 2.0)"
else
	not_ok "lead-provider.service hardened" "exposure '$exposure'"
fi

# 4. a throwaway cluster on the installed extension: the superuser over
#    TCP (trust), the provider over the Unix socket with peer
#    authentication, as the packaged settings do
le_log "a cluster on port $PKG_PGPORT with the installed lead_enrich"
mkdir -p "$rundir"
chown "$LE_RUN_USER" "$rundir"
as_run_user "$PGBIN/initdb" -D "$rundir/pgdata" -U postgres --auth-local=peer --auth-host=trust \
	-E UTF8 --locale=C.UTF-8 >"$work/initdb.log" 2>&1 || {
	not_ok "initdb" "$(tail -3 "$work/initdb.log")"
	finish
}
token=pkg-check-$(date +%s)$$
cat >>"$rundir/pgdata/postgresql.conf" <<CONF
port = $PKG_PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$rundir'
shared_preload_libraries = 'lead_enrich'
max_worker_processes = 16
fsync = off
lead_enrich.endpoint = 'http://127.0.0.1:$PKG_PROVIDER_PORT'
lead_enrich.account_token = '$token'
CONF
if as_run_user "$PGBIN/pg_ctl" -D "$rundir/pgdata" -w -l "$rundir/postgres.log" start >/dev/null; then
	ok "PostgreSQL starts with shared_preload_libraries = 'lead_enrich' from the package"
else
	not_ok "PostgreSQL starts" "$(tail -5 "$rundir/postgres.log")"
	finish
fi
pq() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PKG_PGPORT" -U postgres "$@" 2>&1; }
launcher=
for _ in $(seq 50); do
	launcher=$(pq -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lead_enrich launcher'")
	[ "$launcher" = 1 ] && break
	sleep 0.2
done
check "the background worker's launcher runs" "$launcher" 1

# 5. the provider from the installed binary, as lead_provider, with the
#    packaged settings (README.Debian's steps)
le_log "the installed provider on port $PKG_PROVIDER_PORT"
pq -d postgres -c "CREATE ROLE lead_provider LOGIN" -c "CREATE DATABASE lead_provider OWNER lead_provider" >/dev/null
provider_db="host=$rundir port=$PKG_PGPORT dbname=lead_provider user=lead_provider"
t0=$SECONDS
if runuser -u lead_provider -- /usr/bin/lead_provider init --db "$provider_db" \
	--data /usr/share/lead-provider/directory.csv.gz >"$work/provider-init.log" 2>&1; then
	ok "lead_provider init loads /usr/share/lead-provider/directory.csv.gz as lead_provider ($((SECONDS - t0)) s)"
else
	not_ok "lead_provider init" "$(tail -3 "$work/provider-init.log")"
fi
# the unit's environment: the EnvironmentFile, with this cluster and port
(
	set -a
	# shellcheck disable=SC1091
	. /etc/lead-provider/lead-provider.conf
	set +a
	# the quick start's trial credits (the package's default is none)
	export LEAD_PROVIDER_DB=$provider_db LEAD_PROVIDER_PORT=$PKG_PROVIDER_PORT LEAD_PROVIDER_TRIAL_CREDITS=1000
	exec runuser -u lead_provider -- /usr/bin/lead_provider serve
) </dev/null >"$work/provider.log" 2>&1 &
provider_pid=$!
if le_wait_http "http://127.0.0.1:$PKG_PROVIDER_PORT/health"; then
	ok "lead_provider serve answers /health"
else
	not_ok "lead_provider serve answers /health" "$(tail -3 "$work/provider.log")"
fi

# 6. the quick start (scripts/demo.sh's data) against the installed files
le_log "the quick start"
pq -d postgres -c "CREATE DATABASE crm" >/dev/null
pq -d crm -f "$LE_REPO/test/fixtures/odoo17_crm.sql" >/dev/null
python3 "$LE_REPO/scripts/gen_res_country.py" odoo | pq -d crm >/dev/null
check "CREATE EXTENSION lead_enrich; attach('odoo.crm_lead')" \
	"$(pq -d crm -c "CREATE EXTENSION lead_enrich" -c "SELECT lead_enrich.attach('odoo.crm_lead') ->> 'layout'")" odoo
check "the installed version is the control file's default" \
	"$(pq -d crm -c "SELECT extversion = default_version FROM pg_extension, pg_available_extensions WHERE extname = 'lead_enrich' AND name = extname")" t
domains=$(pq -d lead_provider -c "
	(SELECT domain FROM provider.org WHERE company ->> 'company_type' = 'government' AND state_code IS NOT NULL
	 ORDER BY md5(domain) LIMIT 3)
	UNION ALL (SELECT domain FROM provider.org WHERE company ->> 'company_type' = 'education'
			   AND country_code IN ('GB', 'DE', 'FR', 'AU') ORDER BY md5(domain) LIMIT 3)
	UNION ALL (SELECT domain FROM provider.org WHERE company ->> 'company_type' = 'private'
			   AND company ->> 'logo' IS NOT NULL AND country_code = 'US' ORDER BY md5(domain) LIMIT 3)")
values=""
i=0
for d in $domains; do
	i=$((i + 1))
	values+="('Lead $i', 'lead', true, 10, 'contact$i@$d', false),"
done
values+="('Webmail lead', 'lead', true, 10, 'Jane Doe <jane.doe@gmail.com>', false),"
values+="('Typo lead', 'lead', true, 10, 'john.doe@@example', false),"
values+="('Unknown company', 'lead', true, 10, 'sales@no-such-company-$(date +%s).com', false),"
values+="('Subdomain lead', 'lead', true, 10, 'press@news.$(echo "$domains" | head -1)', false)"
pq -d crm -c "INSERT INTO odoo.crm_lead (name, type, active, probability, email_from, iap_enrich_done) VALUES $values" >/dev/null
check "nine organisations from the installed directory" "$i" 9
outcome=$(pq -d crm -c "SELECT string_agg(status || '=' || n, ' ' ORDER BY status) FROM
	(SELECT status, count(*) AS n FROM lead_enrich.enrich_leads(ARRAY(SELECT id FROM odoo.crm_lead)) GROUP BY status) s")
check "enrich_leads: outcomes" "$outcome" "enriched=10 generic_domain=1 invalid_email=1 not_found=1"
check "enriched leads have their company, country and done flag" \
	"$(pq -d crm -c "SELECT count(*) FROM odoo.crm_lead l JOIN lead_enrich.lead_state s ON s.lead_id = l.id
		WHERE s.status = 'enriched' AND l.partner_name IS NOT NULL AND l.country_id IS NOT NULL
		AND l.iap_enrich_done AND l.reveal_id IS NOT NULL")" 10
check "nine credits: one per company (the subdomain lead is the first's company)" \
	"$(pq -d crm -c "SELECT sum(credits) FROM lead_enrich.lead_state")" 9
check "iap_balance() = trial credits - spent, as the provider's ledger says" \
	"$(pq -d crm -c "SELECT lead_enrich.iap_balance()")|$(pq -d lead_provider -c "SELECT provider.spent('$token')")" "991|9"
pq -d postgres -c "CREATE DATABASE upgrade_check" >/dev/null
check "the packaged upgrade scripts: 1.0 -> default" \
	"$(pq -d upgrade_check -c "CREATE EXTENSION lead_enrich VERSION '1.0'" -c "ALTER EXTENSION lead_enrich UPDATE" \
		-c "SELECT extversion = default_version FROM pg_extension, pg_available_extensions WHERE extname = 'lead_enrich' AND name = extname")" t

# 7. make installcheck against this cluster and the installed extension;
#    the fault server is started by make installcheck itself
le_log "make installcheck"
t0=$SECONDS
(cd "$src" && PGHOST=127.0.0.1 PGPORT=$PKG_PGPORT PGUSER=postgres \
	make installcheck PG_CONFIG="$PGBIN/pg_config" LE_PROVIDER_PORT="$PKG_PROVIDER_PORT" \
	LE_FAULT_PORT="$PKG_FAULT_PORT" LEAD_PROVIDER=/usr/bin/lead_provider) >"$work/installcheck.log" 2>&1
rc=$?
grep -E '^(installcheck:|test |ok |not ok )' "$work/installcheck.log" | sed 's/^/#   /'
if [ "$rc" = 0 ]; then
	ok "make installcheck on the installed extension ($((SECONDS - t0)) s)"
else
	not_ok "make installcheck on the installed extension"
	[ -f "$src/regression.diffs" ] && head -60 "$src/regression.diffs" | sed 's/^/#   /'
fi

# 8. purge: nothing left behind
le_log "apt-get purge"
kill "$provider_pid" 2>/dev/null
wait "$provider_pid" 2>/dev/null
provider_pid=
as_run_user "$PGBIN/pg_ctl" -D "$rundir/pgdata" -m fast -w stop >/dev/null 2>&1
apt-get purge -y -q "${PKGS[@]}" >"$work/purge.log" 2>&1
left=$(for p in "${PKGS[@]}"; do dpkg-query -W -f='${db:Status-Abbrev}\n' "$p" 2>/dev/null | grep -v '^un' | grep -v '^$'; done;
	ls -d "$pkglibdir/lead_enrich.so" /usr/bin/lead_provider /etc/lead-provider /usr/share/lead-provider 2>/dev/null)
check "apt-get purge leaves no package, file or setting behind" "$left" ""

echo "# check_packages.sh took $((SECONDS - started)) s"
finish
