#!/usr/bin/env bash
# Runs every Pilothouse test, installing what the tests need first:
#   - Debian's chromium (browser tests drive it with chromedp);
#   - a real Consul binary (v1.14.11, built from source once and cached
#     outside the repo in $PILOTHOUSE_CACHE, default ~/.cache/pilothouse).
# Then it checks formatting, vet and generated code, fuzzes every decoder
# briefly (scripts/fuzz.sh), and runs `go test`.
# Usage: scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${PILOTHOUSE_CACHE:-$HOME/.cache/pilothouse}"
mkdir -p "$cache"

step() { printf '\n== %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

step "chromium for browser tests"
if ! command -v chromium >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
chromium --version
export PILOTHOUSE_CHROMIUM="${PILOTHOUSE_CHROMIUM:-$(command -v chromium)}"

step "consul for the Consul backend tests"
consul_version=1.14.11
consul_bin="$cache/consul-$consul_version/consul"
if [ ! -x "$consul_bin" ]; then
  # Consul's go.mod replaces its api/sdk submodules with local paths; drop
  # those replace lines and build the module as downloaded.
  work=$(mktemp -d)
  (
    cd "$work"
    GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/consul@v$consul_version" > dl.json
    src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' dl.json)
    cp -r "$src" consul && chmod -R u+w consul && cd consul
    sed -i '/^replace /d; /^replace (/,/^)/d' go.mod
    GOFLAGS=-mod=mod go build -o "$work/consul.bin" .
  )
  mkdir -p "$(dirname "$consul_bin")"
  mv "$work/consul.bin" "$consul_bin"
  rm -rf "$work"
fi
"$consul_bin" version | sed -n 1p
export PILOTHOUSE_CONSUL="$consul_bin"

step "gofmt, go vet, templ generate"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
go vet ./...
go tool templ generate >/dev/null
if [ -n "$(git status --porcelain -- '*_templ.go')" ]; then
  echo "templ generate changed generated files (commit them):"; git status --porcelain -- '*_templ.go'; exit 1
fi

step "fuzz every decoder for a short, bounded time"
scripts/fuzz.sh

step "go test"
go test -count=1 -timeout 12m "$@" ./...
