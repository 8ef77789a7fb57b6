#!/usr/bin/env bash
# Refresh the dashboard's browser assets from the npm registry, at the versions pinned here, with their
# licences.  Nothing is built: the files are the packages' own distributed ones, served as they are.
# Run from anywhere; needs npm (only `npm pack`, which downloads a package's tarball) and tar.
set -euo pipefail
UPLOT=1.6.32
HTMX=2.0.8

here="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$here/oumi_jobs/dashboard/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {  # package version -> unpacked under $work/<package>/package
    mkdir -p "$work/$1"
    (cd "$work/$1" && npm pack --silent "$1@$2" >/dev/null && tar -xzf ./*.tgz)
}

fetch uplot "$UPLOT"
mkdir -p "$vendor/uplot"
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$work/uplot/package/dist/uPlot.min.css" \
   "$work/uplot/package/LICENSE" "$vendor/uplot/"
echo "$UPLOT" > "$vendor/uplot/VERSION"

fetch htmx.org "$HTMX"
mkdir -p "$vendor/htmx"
cp "$work/htmx.org/package/dist/htmx.min.js" "$work/htmx.org/package/LICENSE" "$vendor/htmx/"
echo "$HTMX" > "$vendor/htmx/VERSION"

echo "vendored uPlot $UPLOT and htmx $HTMX into $vendor"
