#!/usr/bin/env bash
# CI: what a change does to the model, for the pull/merge request. Compares the workspace
# (after `dvc repro`) with BASE, a git revision such as origin/main, and writes
#   OUT/report.md      metrics and params diff tables, curves as Mermaid charts and the
#                      confusion matrix as a table (the comment's body, no image host needed)
#   OUT/plots/         `dvc plots diff` as HTML: open index.html from the CI artifacts
# Usage: ci/report.sh BASE OUT [LINK]   (LINK: where the artifacts are, shown in the report)
set -euo pipefail

base="${1:?usage: ci/report.sh BASE OUT [LINK]}"
out="${2:?usage: ci/report.sh BASE OUT [LINK]}"
link="${3:-}"

dvc() { uv run --no-sync dvc "$@"; }

mkdir -p "$out"
dvc plots diff "$base" --out "$out/plots" >/dev/null
{
  echo "## Model report"
  echo
  echo "This change compared with \`$base\`, after \`dvc repro\`."
  echo
  echo "### Metrics"
  echo
  dvc metrics diff --all --md "$base"
  echo
  echo "### Parameters"
  echo
  params="$(dvc params diff --md "$base")"
  echo "${params:-No parameter changed.}"
  echo
  echo "### Quality gate"
  echo
  uv run --no-sync python - reports/registry.json <<'PY'
import json, sys

record = json.load(open(sys.argv[1]))
champion = record.get("previous_champion")
if champion is None and not record.get("shared_registry"):
    print("No champion comparison was made: CI has no tracking server (set the MLFLOW_TRACKING_*"
          " secrets, see ci/README.md); only the thresholds and the baseline were checked.")
elif champion is None:
    print("The team's registry has no champion yet: only the thresholds and the baseline were"
          " checked.")
else:
    print(f"Compared with the team registry's champion, version {champion}.")
reasons = record.get("reasons") or []
print()
print("Refused: " + "; ".join(reasons) if reasons else "Passed.")
PY
  echo
  echo "### Plots"
  echo
  dvc plots diff "$base" --json | uv run --no-sync python ci/plots_markdown.py
  echo
  if [[ -n "$link" ]]; then
    echo "Every plot, interactive: [model-report artifact]($link) (plots/index.html)."
  else
    echo "Every plot, interactive: plots/index.html in the model-report artifact."
  fi
} >"$out/report.md"
echo "wrote $out/report.md and $out/plots/index.html"
