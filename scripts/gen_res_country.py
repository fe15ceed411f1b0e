#!/usr/bin/env python3
"""Print SQL that fills Odoo's res_country and res_country_state (schema
given as argument, default odoo) with every ISO 3166-1 country and its
top-level ISO 3166-2 subdivisions, from Debian's iso-codes.  The demo uses
it so that every organisation's country and state resolve."""
import json
import sys

schema = sys.argv[1] if len(sys.argv) > 1 else "odoo"
base = "/usr/share/iso-codes/json/"
countries = json.load(open(base + "iso_3166-1.json"))["3166-1"]
subdivisions = json.load(open(base + "iso_3166-2.json"))["3166-2"]


def lit(s):
    return "'" + s.replace("'", "''") + "'"


print(f"INSERT INTO {schema}.res_country (name, code) VALUES")
print(",\n".join(f"  ({lit(json.dumps({'en_US': c['name']}))}, {lit(c['alpha_2'])})"
                 for c in countries))
print("ON CONFLICT (code) DO NOTHING;")
rows = [s for s in subdivisions if "parent" not in s]
print(f"INSERT INTO {schema}.res_country_state (country_id, name, code)")
print("SELECT c.id, v.name, v.code FROM (VALUES")
print(",\n".join(f"  ({lit(s['code'][:2])}, {lit(s['name'])}, {lit(s['code'][3:])})" for s in rows))
print(f") AS v(country, name, code) JOIN {schema}.res_country c ON c.code = v.country")
print("ON CONFLICT (country_id, code) DO NOTHING;")
