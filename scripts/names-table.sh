#!/usr/bin/env bash
# Regenerates README.md's names table from the code (`ringress migrate --output names-table`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
target/release/ringress migrate --output names-table > target/names-table.md
python3 - <<'PY'
readme = open("README.md").read()
table = open("target/names-table.md").read().rstrip("\n")
begin = readme.index("<!-- names-table:")
end = readme.index("<!-- end of names-table -->") + len("<!-- end of names-table -->")
open("README.md", "w").write(readme[:begin] + table + readme[end:])
PY
