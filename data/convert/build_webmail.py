#!/usr/bin/env python3
"""Rebuild data/webmail_domains.txt from the npm package `email-providers` (ISC).

Usage:
    cd "$(mktemp -d)" && npm pack email-providers && tar xzf email-providers-*.tgz
    python3 data/convert/build_webmail.py <that dir>/package [--out data]

Reads package/all.json (the full list; common.json is a subset of it), merges
data/webmail_extra.txt if that file exists (our own additions, '#' comments
allowed), checks that the domains the extension relies on are present, and
writes one lower-case domain per line, sorted and unique. Deterministic:
same input, same bytes. Python 3 standard library only.
"""
import argparse
import json
import os
import sys

REQUIRED = """gmail.com googlemail.com outlook.com hotmail.com hotmail.fr hotmail.co.uk
live.com msn.com yahoo.com yahoo.fr yahoo.co.uk icloud.com me.com aol.com free.fr
orange.fr gmx.de gmx.net web.de t-online.de qq.com 163.com 126.com mail.ru
yandex.ru naver.com protonmail.com proton.me yopmail.com mailinator.com""".split()


def norm(d):
    d = d.strip().lower().rstrip('.')
    return d


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('package_dir', help='unpacked email-providers package directory')
    ap.add_argument('--out', default=os.path.join(repo, 'data'))
    a = ap.parse_args()

    with open(os.path.join(a.package_dir, 'all.json'), encoding='utf-8') as f:
        domains = {norm(d) for d in json.load(f)}
    with open(os.path.join(a.package_dir, 'common.json'), encoding='utf-8') as f:
        common = {norm(d) for d in json.load(f)}
    pkg = len(domains)
    domains |= common  # common.json is a subset of all.json; union is harmless
    extra_path = os.path.join(a.out, 'webmail_extra.txt')
    extra = set()
    if os.path.exists(extra_path):
        with open(extra_path, encoding='utf-8') as f:
            for line in f:
                line = line.split('#', 1)[0].strip()
                if line:
                    extra.add(norm(line))
    domains |= extra
    domains.discard('')
    missing = [d for d in REQUIRED if d not in domains]
    if missing:
        sys.exit('required webmail domains missing (add them to data/webmail_extra.txt): '
                 + ' '.join(missing))
    out = os.path.join(a.out, 'webmail_domains.txt')
    with open(out, 'w', encoding='utf-8', newline='\n') as f:
        for d in sorted(domains):
            f.write(d + '\n')
    print(f'all.json: {pkg}, common.json: {len(common)}, extra: {len(extra)}, '
          f'written: {len(domains)} -> {out}')


if __name__ == '__main__':
    main()
