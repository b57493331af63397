#!/bin/sh
# The shared library exports exactly the public API: every ZP_API function
# of include/zpage.h, and nothing else (zpage.map).  Prints TAP.
lib=${1:-build/libzpage.so}
n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; }
if ! command -v nm >/dev/null 2>&1; then
	echo "ok 1 - exports # SKIP nm is not installed"
	echo "1..1"
	exit 0
fi
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort)
api=$(sed -n 's/^ZP_API [^(]*[ *]\(zp_[a-z_]*\)(.*/\1/p' include/zpage.h | sort)
extra=$(printf '%s\n' "$exported" | grep -v '^zp_' | tr '\n' ' ')
[ -z "$extra" ] && ok "nothing but zp_ symbols exported" || bad "exports more than zp_*: $extra"
[ "$exported" = "$api" ] && ok "the exports are the ZP_API functions of zpage.h" ||
	{ bad "exports differ from zpage.h's ZP_API functions"; printf '# exported: %s\n# zpage.h: %s\n' "$(echo $exported)" "$(echo $api)"; }
echo "1..$n"
[ $fail -eq 0 ]
