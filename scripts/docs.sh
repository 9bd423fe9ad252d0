#!/usr/bin/env bash
# Build the docs site (mkdocs.yml, pages under docs/) with every warning an error: a page missing
# from nav, a broken link or anchor fails. The configuration reference's freshness is checked too.
#   scripts/docs.sh          build into a temporary directory, removed afterwards (a check)
#   scripts/docs.sh DIR      build into DIR and keep it (e.g. site/, which git ignores)
# Needs .venv with requirements-dev.txt (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if (($# > 1)); then
    echo "usage: scripts/docs.sh [SITE_DIR]" >&2
    exit 2
fi
if (($# == 1)); then
    site_dir="$1"
else
    site_dir="$(mktemp -d)"
    trap 'rm -rf "$site_dir"' EXIT
fi
.venv/bin/python -m components.settings_reference --check
.venv/bin/mkdocs build --strict --quiet --site-dir "$site_dir"
echo "docs: built into $site_dir"
