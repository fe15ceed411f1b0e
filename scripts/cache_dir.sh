# shellcheck shell=bash
# Sourced by the scripts that build third-party software once and keep it
# (pg_build.sh, citus_build.sh): where the builds are cached, LE_PGCACHE,
# outside the clone so that every clone and CI run on the machine shares
# them (default /var/cache/lead_enrich as root, else the user's cache).
if [ -z "${LE_PGCACHE:-}" ]; then
	if [ "$(id -u)" = 0 ]; then
		LE_PGCACHE=/var/cache/lead_enrich
	else
		LE_PGCACHE=${XDG_CACHE_HOME:-$HOME/.cache}/lead_enrich
	fi
fi
