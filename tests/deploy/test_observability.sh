#!/usr/bin/env bash
# The example Prometheus rules and Grafana dashboard (deploy/observability): the rules pass
# `promtool check rules` and their own `promtool test rules` (each alert fires on the series
# meant to raise it), every dashboard query parses as PromQL (checked by promtool as a
# recording rule, Grafana's variables replaced), and every series they name is documented in
# docs/operations.md. promtool: Debian's prometheus package (scripts/setup.sh); $PROMTOOL
# overrides.
set -euo pipefail

SRC=${TG_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PROMTOOL=${PROMTOOL:-promtool}
OBS="$SRC/deploy/observability"
WORK=$(mktemp -d /tmp/tg-observability.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if ! command -v "$PROMTOOL" >/dev/null; then
    echo "FAIL: no promtool: install the Debian package prometheus (scripts/setup.sh does)"
    exit 1
fi

"$PROMTOOL" check rules "$OBS/prometheus-rules.yml"
(cd "$SRC/tests/deploy" && "$PROMTOOL" test rules observability-rules-test.yml)

python3 - "$OBS/grafana-dashboard.json" "$WORK/dashboard-rules.yml" <<'PY'
import json, sys

dash = json.load(open(sys.argv[1]))
rules, n = [], 0
for p in dash["panels"]:
    if p["type"] == "row":
        continue
    if not p.get("targets"):
        sys.exit(f"FAIL: panel {p['title']!r} has no query")
    for t in p["targets"]:
        expr = (t["expr"].replace("$__rate_interval", "5m").replace("$job", ".*")
                .replace("$instance", ".*").replace("$listener", ".*"))
        n += 1
        rules.append({"record": f"dashboard:panel{p['id']}:{t['refId']}", "expr": expr})
# JSON is YAML: promtool reads it as a rule file
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
print(f"dashboard: {len(dash['panels'])} panels, {n} queries")
PY
"$PROMTOOL" check rules "$WORK/dashboard-rules.yml"

# every series named in the rules and the dashboard is one docs/operations.md describes
missing=0
for name in $(grep -ohE '\b(tollgate|process)_[a-z_]+' "$OBS/prometheus-rules.yml" \
    "$OBS/grafana-dashboard.json" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
    if ! grep -q "\`$name\`\|\`$name{" "$SRC/docs/operations.md"; then
        echo "FAIL: $name is used in deploy/observability but not in docs/operations.md"
        missing=1
    fi
done
[ "$missing" = 0 ]
echo "observability: rules, rule tests, dashboard queries and series names ok"
