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
.venv/bin/python -m components.settings.reference --check
# Not --quiet: it drops the warnings that --strict counts, and the build would pass with them.
# NO_MKDOCS_2_WARNING: material's end-of-life banner, printed on every build, is not about these pages.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site_dir"
echo "docs: built into $site_dir"
