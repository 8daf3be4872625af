#!/usr/bin/env bash
# CI: reproduce the DVC pipeline (`dvc repro`), pulling cached data and models first when
# the DVC remote is reachable, so that unchanged stages are not run again.
#
# The remote counts as reachable when either is set (CI secrets/variables, never echoed):
#   DVC_CONFIG_LOCAL_READONLY  the text of a .dvc/config.local holding READ-ONLY credentials
#                              for the remote, e.g. from `dvc remote modify --local storage
#                              access_key_id ...` with a key that may only read. Jobs that run
#                              code under review get this one; the write credential
#                              (DVC_CONFIG_LOCAL) is used only by the retrain job's `dvc push`.
#   DVC_PULL=true              the runner already has credentials (OIDC role, workload identity)
# Without either, the pipeline runs from the data in git (the built-in example dataset).
#
# The team's MLflow server (CI secrets, never echoed; see ci/README.md):
#   MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD
#                              the default branch's run logs there, and the quality gate
#                              compares with the server's champion before registering
#   REGISTRY_READ_ONLY=true    pull requests, with the READ-ONLY user's credentials: runs log to
#                              this runner's mlflow.db, the gate reads the server's champion
#                              (MLFLOW_REGISTRY_URI), nothing is registered, no alias moves
# Without a server, everything stays in this runner's mlflow.db: there is no champion to
# compare with, and the model report says so.
set -euo pipefail

dvc() { uv run --no-sync dvc "$@"; }

if [[ -n "${DVC_CONFIG_LOCAL_READONLY:-}" ]]; then
  (umask 077 && printf '%s\n' "$DVC_CONFIG_LOCAL_READONLY" >.dvc/config.local)
  DVC_PULL=true
fi

if [[ "${DVC_PULL:-false}" == "true" ]]; then
  echo "DVC remote credentials found: pulling data and cached outputs"
  dvc pull --allow-missing
else
  # Data tracked by a .dvc file lives only in the remote: without credentials it cannot be
  # found, and `dvc repro` would fail with a less helpful message.
  missing=()
  while IFS= read -r -d '' tracked; do
    [[ -e "${tracked%.dvc}" ]] || missing+=("${tracked%.dvc}")
  done < <(find . -path ./.venv -prune -o -path ./.git -prune -o -name '*.dvc' -type f -print0)
  if ((${#missing[@]})); then
    echo "error: ${missing[*]} is tracked by DVC but not here, and no DVC remote credentials" >&2
    echo "are set: add DVC_CONFIG_LOCAL_READONLY (or DVC_PULL=true) to this CI project" >&2
    echo "(see ci/README.md)." >&2
    exit 1
  fi
fi

if [[ -n "${MLFLOW_TRACKING_URI:-}" && "${REGISTRY_READ_ONLY:-false}" == "true" ]]; then
  echo "read-only tracking credentials: the gate compares with the team registry's champion;"
  echo "runs stay in this runner's mlflow.db, nothing is registered"
  export MLFLOW_REGISTRY_URI="$MLFLOW_TRACKING_URI"
  unset MLFLOW_TRACKING_URI
elif [[ -z "${MLFLOW_TRACKING_URI:-}" ]]; then
  echo "no tracking server (MLFLOW_TRACKING_URI): the gate has no champion to compare with"
  unset MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD REGISTRY_READ_ONLY
fi

dvc repro
