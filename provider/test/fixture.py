#!/usr/bin/env python3
"""Write a small synthetic directory in the exact format of
data/directory.csv.gz, for developing the provider without the real one.

Usage: python3 provider/test/fixture.py OUT.csv.gz [ROWS]

The organisations are invented (example-style names under .test-like
domains are avoided on purpose so that look-up rules are exercised with
real public suffixes); never use this file as a directory.
"""
import csv
import gzip
import random
import sys

COLUMNS = ["clearbit_id", "domain", "aliases", "name", "legal_name",
           "description", "logo", "company_type", "founded_year", "sector",
           "industry_group", "industry", "sub_industry", "industry_reveal_id",
           "employees", "estimated_annual_revenue", "phone_numbers", "email",
           "timezone", "tech", "twitter", "facebook", "linkedin", "crunchbase",
           "location", "city", "postal_code", "state_code", "state_name",
           "country_code", "country_name", "source"]

PLACES = [("US", "United States", "CA", "California", "America/Los_Angeles", "com"),
          ("US", "United States", "NY", "New York", "America/New_York", "com"),
          ("US", "United States", "TX", "Texas", "America/Chicago", "org"),
          ("GB", "United Kingdom", None, None, "Europe/London", "co.uk"),
          ("BE", "Belgium", None, None, "Europe/Brussels", "be"),
          ("DE", "Germany", None, None, "Europe/Berlin", "de"),
          ("AU", "Australia", "NSW", "New South Wales", "Australia/Sydney", "com.au")]
REVEAL = ["30", "155", "33", "69", "86", "114", "136", "138", "148", "149",
          "150", "152", "153", "158", "160", "161", "162", "163", "165", "166",
          "167", "168", "238", "239"]


def main():
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    rnd = random.Random(42)
    with gzip.open(out, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in range(rows):
            cc, cn, sc, sn, tz, tld = PLACES[i % len(PLACES)]
            name = "Fixture%05d" % i
            domain = "fixture%05d.%s" % (i, tld)
            aliases = "{fixture%05d-alias.net}" % i if i % 10 == 0 else ""
            emp = str(rnd.choice([5, 40, 300, 2500, 20000])) if i % 3 else ""
            w.writerow(["fx-%05d" % i, domain, aliases, name,
                        name + " Ltd" if i % 2 else "", "A fixture company",
                        "", "private", str(1950 + i % 70) if i % 4 else "",
                        "", "", "", "", REVEAL[i % len(REVEAL)], emp, "",
                        "{+1 555 0100}" if i % 5 == 0 else "",
                        "{info@%s}" % domain if i % 7 == 0 else "",
                        tz, "{nginx,react}" if i % 6 == 0 else "",
                        "", "", "", "", "", "", "", sc or "", sn or "",
                        cc, cn, "fixture"])


if __name__ == "__main__":
    main()
