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
