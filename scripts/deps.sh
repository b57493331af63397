#!/usr/bin/env bash
# scripts/deps.sh [all|test]: installs what zpage needs, from Debian's
# packages, when it is missing.  Safe to run again.
#   test: what building and `make check` need (compiler, make, pkg-config,
#         the sanitizer runtimes, and numpy, pytest and hypothesis for the
#         drop-in's test)
#   all (the default, for `make bench` and .ci/run): that, and the
#         allocators zpage-bench compares with and gnuplot for its charts
set -euo pipefail

mode=${1:-all}
case $mode in
all | test) ;;
*) echo "usage: scripts/deps.sh [all|test]" >&2; exit 2 ;;
esac

pkgs=()
command -v cc >/dev/null 2>&1 || pkgs+=(gcc)
command -v make >/dev/null 2>&1 || pkgs+=(make)
command -v pkg-config >/dev/null 2>&1 || pkgs+=(pkgconf)
# sanitizer runtimes for `make check` (gcc prints a bare name when missing)
for lib in libasan.so libubsan.so libtsan.so; do
	if ! command -v gcc >/dev/null 2>&1 || [[ "$(gcc -print-file-name=$lib)" != /* ]]; then
		pkgs+=(libgcc-12-dev)
		break
	fi
done

# zpage-bench: the allocators it compares with (loaded with dlopen) and
# gnuplot for its charts
if [[ $mode == all ]]; then
	for lib in libjemalloc.so.2:libjemalloc2 libmimalloc.so.2:libmimalloc2.0 libtcmalloc.so.4:libgoogle-perftools4; do
		ldconfig -p 2>/dev/null | grep -q "${lib%%:*}" || pkgs+=("${lib##*:}")
	done
	command -v gnuplot >/dev/null 2>&1 || pkgs+=(gnuplot-nox)
fi

# the drop-in's test (tests/preload.sh) runs numpy's own tests under
# Debian's /usr/bin/python3
for mod in numpy:python3-numpy pytest:python3-pytest hypothesis:python3-hypothesis; do
	/usr/bin/python3 -c "import ${mod%%:*}" >/dev/null 2>&1 || pkgs+=("${mod##*:}")
done

if ((${#pkgs[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing ${pkgs[*]}; run as root or install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
