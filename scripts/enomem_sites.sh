#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Which RCACHE_ENOMEM sites of src/ a set of tests reaches. A copy of the tree is built in
# which every RCACHE_ENOMEM that a function returns or stores (not the ones compared against,
# not switch labels) also records its file and line when evaluated; the tests run; the sites
# never evaluated are listed. Usage:
#   scripts/enomem_sites.sh [ctest -R regex]   (default: the allocation-failure walks)
# Integration tests need the servers' env.sh sourced first (scripts/servers.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
regex=${1:-alloc_fail}
work=$(mktemp -d /tmp/rcache-enomem.XXXXXX)
trap 'rm -rf "$work"' EXIT
git -C "$root" ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$work")
python3 - "$work/src" <<'EOF'
import re, sys, glob, os
site = re.compile(r'(?<![=!]=\s)(?<![=!]=)(?<!case\s)\bRCACHE_ENOMEM\b')
n = 0
for path in sorted(glob.glob(sys.argv[1] + '/*.c') + glob.glob(sys.argv[1] + '/*/*.c')):
    out = []
    for i, line in enumerate(open(path), 1):
        s = line.lstrip()
        if 'RCACHE_ENOMEM' in line and not s.startswith(('/*', '*', '#')):
            line, k = site.subn('(rcache__enomem_site("%s:%d"), RCACHE_ENOMEM)'
                                % (os.path.relpath(path, sys.argv[1]), i), line)
            n += k
        out.append(line)
    open(path, 'w').write(''.join(out))
with open(sys.argv[1] + '/internal.h', 'a') as h:
    h.write('\nvoid rcache__enomem_site(const char *where);\n')
with open(sys.argv[1] + '/util.c', 'a') as u:
    u.write(r'''
#include <stdio.h>
void rcache__enomem_site(const char *where) {
  const char *f = getenv("RCACHE_ENOMEM_SITES");
  FILE *o = f ? fopen(f, "a") : NULL;
  if (o) { fprintf(o, "%s\n", where); fclose(o); }
}
''')
print(n, file=open(sys.argv[1] + '/../sites.count', 'w'))
EOF
grep -rhno 'rcache__enomem_site("[^"]*")' "$work/src" | sed 's/.*site("\(.*\)")/\1/' | sort -u >"$work/all"
cmake -S "$work" -B "$work/build" -DCMAKE_BUILD_TYPE=Debug -DRCACHE_BUILD_BENCH=OFF >/dev/null
cmake --build "$work/build" -j2 >/dev/null
export RCACHE_ENOMEM_SITES="$work/hit"
(cd "$work/build" && ctest -R "$regex" --output-on-failure >/dev/null) || echo "(some tests failed)"
sort -u "$work/hit" 2>/dev/null >"$work/hit.u" || true
echo "RCACHE_ENOMEM sites reached by ctest -R '$regex': $(comm -12 "$work/all" "$work/hit.u" | wc -l) of $(wc -l <"$work/all")"
echo "not reached:"
comm -23 "$work/all" "$work/hit.u" | sort -t: -k1,1 -k2,2n | while IFS=: read -r f l; do
  printf '  %s:%s: %s\n' "$f" "$l" "$(sed -n "${l}p" "$root/src/$f" | sed 's/^ *//')"
done
