#!/usr/bin/env bash
# Run the checks and the whole test suite with the project's .venv (scripts/setup.sh creates it).
#   scripts/test.sh [pytest args...]      lint, types, import contracts, then pytest
#   scripts/test.sh --lint-only           lint, types and import contracts only
# Exit code: pytest's when it fails, otherwise 1 if a check failed, otherwise 0.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${VENV:-.venv}
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "test.sh: $VENV missing; run scripts/setup.sh (or make setup) first" >&2
  exit 1
fi
export PATH="$PWD/$VENV/bin:$PATH"
lint_only=0
if [[ "${1:-}" == "--lint-only" ]]; then
  lint_only=1
  shift
fi

declare -a names=() codes=() times=()
step() { # name, command...
  local name=$1 began rc
  shift
  printf '\n\033[1m==> %s\033[0m  (%s)\n' "$name" "$*"
  began=$(date +%s)
  "$@"
  rc=$?
  names+=("$name")
  codes+=("$rc")
  times+=("$(($(date +%s) - began))")
  return 0
}

step "ruff check" ruff check .
step "ruff format" ruff format --check .
step "mypy" mypy
step "import contracts" lint-imports
checks_failed=0
for rc in "${codes[@]}"; do ((rc != 0)) && checks_failed=1; done

pytest_rc=
if ((lint_only == 0)); then
  step "pytest" python -m pytest "$@"
  pytest_rc=${codes[-1]}
fi

printf '\n\033[1m==> summary\033[0m\n'
for i in "${!names[@]}"; do
  if ((codes[i] == 0)); then verdict=ok; else verdict="FAILED (exit ${codes[i]})"; fi
  printf '  %-18s %-18s %4ss\n' "${names[i]}" "$verdict" "${times[i]}"
done

if [[ -n "$pytest_rc" && "$pytest_rc" != 0 ]]; then
  exit "$pytest_rc"
fi
exit "$checks_failed"
