#!/usr/bin/env bash
# Fetches WordPress's SQLite database integration (the drop-in WordPress runs on SQLite with)
# into a cache directory and prints its path. The npm registry carries it inside the
# WordPress Playground build package; only the plugin's zip is kept.
set -euo pipefail
dest="${SITETRAIL_WP_SQLITE_PLUGIN:-/var/cache/sitetrail/sqlite-database-integration}"
if [ -f "$dest/load.php" ] && [ -f "$dest/db.copy" ]; then
  echo "$dest"
  exit 0
fi
package="@wp-playground/wordpress-builds@0.9.19"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$package" >/dev/null)
zip="package/src/sqlite-database-integration/sqlite-database-integration.zip"
tar xzf "$tmp"/*.tgz -C "$tmp" "$zip"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/$zip" "$tmp/plugin"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/plugin/sqlite-database-integration-main" "$dest"
echo "$dest"
