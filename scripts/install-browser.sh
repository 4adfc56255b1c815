#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser tests when it is missing.
# Idempotent; needs root (CI and the dev machines run as root). Never downloads a browser
# build of its own: Playwright drives /usr/bin/chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "Chromium is missing: run 'sudo apt-get install chromium' for the browser tests" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
