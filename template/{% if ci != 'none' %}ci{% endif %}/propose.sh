#!/usr/bin/env bash
# CI: commit the working tree's changes to BRANCH and open (or refresh) a pull/merge request
# into the default branch. Used by the scheduled jobs (retraining, template update).
# Usage: ci/propose.sh BRANCH TITLE BODY_FILE
#   GitHub: needs GH_TOKEN with contents:write and pull-requests:write (the job's token).
#   GitLab: needs GITLAB_BOT_TOKEN, a project access token (role Developer, scopes api and
#           write_repository); the merge request is opened by git push options.
set -euo pipefail

branch="${1:?usage: ci/propose.sh BRANCH TITLE BODY_FILE}"
title="${2:?usage: ci/propose.sh BRANCH TITLE BODY_FILE}"
body_file="${3:?usage: ci/propose.sh BRANCH TITLE BODY_FILE}"

if [[ -z "${GITHUB_ACTIONS:-}" && -z "${GITLAB_CI:-}" ]]; then
  echo "error: run me in GitHub Actions or GitLab CI" >&2
  exit 1
fi
if [[ -n "${GITLAB_CI:-}" && -z "${GITLAB_BOT_TOKEN:-}" ]]; then
  echo "error: set GITLAB_BOT_TOKEN (project access token: api, write_repository)" >&2
  exit 1
fi
if [[ -z "$(git status --porcelain)" ]]; then
  echo "nothing changed: no pull request to open"
  exit 0
fi

git config user.name "${GIT_AUTHOR_NAME:-ci-bot}"
git config user.email "${GIT_AUTHOR_EMAIL:-ci-bot@users.noreply.local}"
git switch --force-create "$branch"
git add --all
# The hooks ran in the CI jobs already; a merge conflict left by `copier update` must reach
# the reviewer as a visible conflict rather than stop the proposal.
git commit --quiet --no-verify --message "$title"

if [[ -n "${GITHUB_ACTIONS:-}" ]]; then
  gh auth setup-git
  git push --force origin "HEAD:refs/heads/$branch"
  if gh pr view "$branch" --json state --jq .state 2>/dev/null | grep -qx OPEN; then
    gh pr edit "$branch" --title "$title" --body-file "$body_file"
  else
    gh pr create --head "$branch" --title "$title" --body-file "$body_file"
  fi
else
  # Push options cannot carry newlines: the description is the body's first line and a link
  # to this pipeline; the merge request's own pipeline posts the full model report.
  description="$(head -n 1 "$body_file") (opened by ${CI_PIPELINE_URL})"
  # The token goes to git through a credential helper, never in a URL or the log.
  # shellcheck disable=SC2016  # expanded by the helper's shell, not here
  git -c credential.helper='!f() { echo username=oauth2; echo "password=${GITLAB_BOT_TOKEN}"; }; f' \
    push --force \
    -o merge_request.create \
    -o "merge_request.target=${CI_DEFAULT_BRANCH}" \
    -o "merge_request.title=${title}" \
    -o "merge_request.description=${description}" \
    -o merge_request.remove_source_branch \
    "${CI_SERVER_URL}/${CI_PROJECT_PATH}.git" "HEAD:refs/heads/$branch"
fi
