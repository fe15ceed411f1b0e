#!/usr/bin/env bash
# The extension's build rebuilds what a header change affects.
#
# PGXS tracks no header dependency on a server built without
# --enable-depend (Debian's): a merge that grew struct LeadTable in
# lead_table.h once left enrich.o, whose source had not changed, allocating
# the old struct; lt_prepare wrote the new fields past its end, over the
# next allocation (the batch's copy of the table name became "\027", the
# Oid of int4), and the worker wrote answers to the wrong leads.
#
# For each header of src/, in a copy of the tree with every object up to
# date (objects stand in as empty files, newer than every source: make
# reads times, not contents), the header is made newer; "make -n" must then
# rebuild every object whose source includes it, directly or through
# another header (as the compiler's -MM lists them).  Nothing is compiled.
#
# Prints "ok - ..." / "not ok - ..." and a final "N passed, N failed" line.
source "$(dirname "$0")/lib.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$LE_REPO" -cf - Makefile src sql lead_enrich.control | tar -C "$work" -xf -
rm -f "$work"/src/*.o "$work"/*.so "$work"/*.bc

# the compiler's view of the includes (lead_enrich's own headers only)
cflags="-Isrc -I$("$LE_PG_CONFIG" --includedir-server) -I$("$LE_PG_CONFIG" --includedir) $(curl-config --cflags 2>/dev/null)"
declare -A includers
for c in "$work"/src/*.c; do
	o=src/$(basename "${c%.c}").o
	# shellcheck disable=SC2086
	deps=$(cd "$work" && ${CC:-cc} -MM $cflags "src/$(basename "$c")" 2>&1) || {
		not_ok "the compiler lists the includes of $(basename "$c")" "$deps"
		finish
	}
	for h in $(printf '%s\n' "$deps" | tr ' \\' '\n\n' | grep '^src/.*\.h$' | sort -u); do
		includers[$h]+="$o "
	done
done

# up to date: sources old, objects and the library newer
find "$work" -type f -exec touch -d '2001-01-01 00:00:00' {} +
make_stamps() {
	for c in "$work"/src/*.c; do touch -d '2002-01-01 00:00:00' "${c%.c}.o"; done
	touch -d '2002-01-01 00:00:00' "$work/lead_enrich.so" "$work/lead_enrich--1.2.sql"
}
rebuilt() {
	make -C "$work" -n PG_CONFIG="$LE_PG_CONFIG" 2>&1 | grep -o -- '-o src/[A-Za-z0-9_]*\.o' | sed 's/^-o //' | sort -u
}
make_stamps
check "nothing is rebuilt when every object is newer than every source" "$(rebuilt | tr '\n' ' ')" ""

for h in "$work"/src/*.h; do
	hh=src/$(basename "$h")
	make_stamps
	touch -d '2003-01-01 00:00:00' "$h"
	got=" $(rebuilt | tr '\n' ' ')"
	missing=
	for o in ${includers[$hh]:-}; do
		[[ "$got" == *" $o "* ]] || missing+="$o "
	done
	n=$(wc -w <<<"${includers[$hh]:-}")
	if [ -z "${includers[$hh]:-}" ]; then
		not_ok "$hh: no source includes it (the compiler's -MM found no includer)"
	elif [ -z "$missing" ]; then
		ok "$hh changed: the $n objects whose sources include it are rebuilt"
	else
		not_ok "$hh changed: the objects whose sources include it are rebuilt" "not rebuilt: $missing"
	fi
	touch -d '2001-01-01 00:00:00' "$h"
done

finish
