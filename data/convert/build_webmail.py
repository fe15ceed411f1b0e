#!/usr/bin/env python3
"""Rebuild data/webmail_domains.txt from the npm package `email-providers` (ISC).

Usage:
    cd "$(mktemp -d)" && npm pack email-providers && tar xzf email-providers-*.tgz
    python3 data/convert/build_webmail.py <that dir>/package [--out data]
    python3 data/convert/build_webmail.py --list data/webmail_domains.txt   # re-curate only

Reads package/all.json (the full list; common.json is a subset of it), or
with --list an existing list, then curates it: drops the public suffixes
(Public Suffix List, /usr/share/publicsuffix/public_suffix_list.dat: com.ar
is not a mail service, and a sub-domain of it is a company) and the domains
of data/webmail_exclude.txt (real organisations), adds those of
data/webmail_extra.txt ('#' comments allowed in both), checks that the
domains the extension relies on are present, and writes one lower-case
domain per line, sorted and unique. Deterministic: same input, same bytes.
Python 3 standard library only.
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


def read_names(path):
    """the domains of a '#'-commented list file, or an empty set"""
    names = set()
    if os.path.exists(path):
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.split('#', 1)[0].strip()
                if line:
                    names.add(norm(line))
    return names


def public_suffixes(path='/usr/share/publicsuffix/public_suffix_list.dat'):
    """is_suffix(domain) by the Public Suffix List (both sections)"""
    rules, wild, exc = set(), set(), set()
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('//'):
                continue
            rule = line.split()[0].lower()
            if rule.startswith('!'):
                exc.add(rule[1:])
            elif rule.startswith('*.'):
                wild.add(rule[2:])
            else:
                rules.add(rule)

    def is_suffix(d):
        if d in exc:
            return False
        return '.' not in d or d in rules or d.split('.', 1)[1] in wild
    return is_suffix


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('package_dir', nargs='?', help='unpacked email-providers package directory')
    ap.add_argument('--list', help='curate this list instead of a package')
    ap.add_argument('--out', default=os.path.join(repo, 'data'))
    a = ap.parse_args()

    if a.list:
        domains = read_names(a.list)
        common = set()
    elif a.package_dir:
        with open(os.path.join(a.package_dir, 'all.json'), encoding='utf-8') as f:
            domains = {norm(d) for d in json.load(f)}
        with open(os.path.join(a.package_dir, 'common.json'), encoding='utf-8') as f:
            common = {norm(d) for d in json.load(f)}
    else:
        ap.error('give the package directory or --list')
    pkg = len(domains)
    domains |= common  # common.json is a subset of all.json; union is harmless
    is_suffix = public_suffixes()
    suffixes = {d for d in domains if '.' in d and is_suffix(d)}  # a bare name matches only itself
    exclude = read_names(os.path.join(a.out, 'webmail_exclude.txt'))
    excluded = domains & exclude
    domains -= suffixes | exclude
    extra = read_names(os.path.join(a.out, 'webmail_extra.txt'))
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
    print(f'input: {pkg}, common.json: {len(common)}, public suffixes dropped: {len(suffixes)} '
          f'({" ".join(sorted(suffixes))}), excluded: {len(excluded)}, extra: {len(extra)}, '
          f'written: {len(domains)} -> {out}')


if __name__ == '__main__':
    main()
