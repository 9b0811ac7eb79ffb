#!/usr/bin/env bash
# The web device's npm packages (web/package-lock.json, exact versions): installed once per lockfile into a
# cache outside the clone (${FMFL_CACHE:-~/.cache/fmfl}/npm/KEY, KEY = sha256 of the lockfile) and linked
# as web/node_modules. PUPPETEER_SKIP_DOWNLOAD: the tests drive Debian's chromium; nothing downloads a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "web_deps.sh: npm is missing (apt-get install nodejs npm)" >&2; exit 1; }
key="$(sha256sum web/package-lock.json | cut -c1-16)"
cache="${FMFL_CACHE:-$HOME/.cache/fmfl}/npm/$key"
if [ ! -d "$cache/node_modules" ]; then
  mkdir -p "$(dirname "$cache")"
  tmp="$(mktemp -d "$(dirname "$cache")/.tmp.XXXXXX")"
  cp web/package.json web/package-lock.json "$tmp/"
  (cd "$tmp" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  mkdir -p "$cache"
  mv "$tmp/node_modules" "$cache/node_modules"
  rm -rf "$tmp"
fi
if [ -L web/node_modules ] || [ ! -e web/node_modules ]; then
  ln -sfn "$cache/node_modules" web/node_modules
fi
echo "web_deps.sh: web/node_modules -> $cache/node_modules"
