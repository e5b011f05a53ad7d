#!/usr/bin/env bash
# Syntax check of the PowerShell scripts under deploy/ without PowerShell: parses them with
# the tree-sitter PowerShell grammar (npm: tree-sitter-powershell + web-tree-sitter) and
# fails on any ERROR or MISSING node. A syntax check only: it runs nothing, so cmdlet
# names, parameters and Windows behaviour stay unverified (docs/install-windows.md).
#
#   bash deploy/windows/check-syntax.sh [FILE.ps1 ...]
#
# Needs node and npm; the packages are cached in $ISOGUARD_CACHE/pssyntax.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${ISOGUARD_CACHE:-$HOME/.cache/isoguard}/pssyntax"
if [[ ! -f "$cache/node_modules/tree-sitter-powershell/tree-sitter-powershell.wasm" || ! -d "$cache/node_modules/web-tree-sitter" ]]; then
	mkdir -p "$cache"
	(cd "$cache" && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts tree-sitter-powershell@0.26.4 web-tree-sitter@0.27.2 >/dev/null)
fi
cat >"$cache/check.cjs" <<'JS'
const { Parser, Language } = require('web-tree-sitter');
const fs = require('fs');
(async () => {
  await Parser.init();
  const lang = await Language.load(require.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
  const parser = new Parser();
  parser.setLanguage(lang);
  let failed = 0;
  for (const file of process.argv.slice(2)) {
    const src = fs.readFileSync(file, 'utf8');
    const bad = [];
    const walk = (n) => { if (n.type === 'ERROR' || n.isMissing) bad.push(n); for (const c of n.children) walk(c); };
    walk(parser.parse(src).rootNode);
    for (const n of bad) {
      const text = JSON.stringify(src.slice(n.startIndex, Math.min(n.endIndex, n.startIndex + 80)));
      console.log(`${file}:${n.startPosition.row + 1}:${n.startPosition.column + 1}: ${n.isMissing ? 'missing ' + n.type : 'syntax error'} at ${text}`);
    }
    console.log(`${file}: ${bad.length === 0 ? 'ok' : bad.length + ' syntax error(s)'}`);
    if (bad.length) failed = 1;
  }
  process.exit(failed);
})();
JS
if [[ $# -eq 0 ]]; then
	mapfile -t files < <(find "$root/deploy" -name '*.ps1' | sort)
else
	files=("$@")
fi
NODE_PATH="$cache/node_modules" node "$cache/check.cjs" "${files[@]}"
