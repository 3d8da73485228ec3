#!/usr/bin/env bash
# Create or update fracta's Kubernetes Secrets from environment variables, with kubectl
# (`make -C deployment/k8s k8s-secrets`). Values go from the environment to kubectl through pipes:
# never onto the command line (where `ps` would show them) or the disk. Use any secret injector:
#   op run --env-file .op-env -- make -C deployment/k8s k8s-secrets
#
#   FRACTA_DB_PASSWORD   the in-cluster PostgreSQL's password (required unless FRACTA_DATABASE_URL is set)
#   FRACTA_DATABASE_URL  a managed PostgreSQL's URL instead (components/managed-services)
#   FRACTA_LLM_ENV       names of the variables for the Secret fracta-llm, given to every agent's Job
#                        (default: "ANTHROPIC_API_KEY OPENAI_API_KEY"); each must be set
#   FRACTA_MCP_ENV       names of the variables for the Secret fracta-mcp, given to the gateway for
#                        the MCP backends (default: none); each must be set
#   FRACTA_NAMESPACE     the namespace (default: fracta)
#   KUBECTL              the kubectl to run (default: kubectl)
#
# --print writes the Secrets' manifests to stdout instead of applying them (e.g. for kubeseal).
# A missing variable stops the script before anything is created, naming every one (exit 2).
set -euo pipefail

NAMESPACE="${FRACTA_NAMESPACE:-fracta}"
KUBECTL="${KUBECTL:-kubectl}"
LLM_ENV="${FRACTA_LLM_ENV-ANTHROPIC_API_KEY OPENAI_API_KEY}"
MCP_ENV="${FRACTA_MCP_ENV-}"
PRINT=0
case "${1:-}" in
  --print) PRINT=1 ;;
  "") ;;
  *) echo "usage: $0 [--print]" >&2; exit 2 ;;
esac

missing=()
need() {
  [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "make-secrets.sh: '$1' is not a variable name" >&2; exit 2; }
  [ -n "${!1:-}" ] || missing+=("$1")
}
if [ -z "${FRACTA_DATABASE_URL:-}" ]; then
  need FRACTA_DB_PASSWORD
fi
for name in $LLM_ENV $MCP_ENV; do need "$name"; done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "make-secrets.sh: missing environment variable(s): ${missing[*]}" >&2
  echo "hint: export them (or run under your secret injector, e.g. op run --), or change FRACTA_LLM_ENV / FRACTA_MCP_ENV" >&2
  exit 2
fi

# The manifest of one Secret from KEY=VARIABLE pairs. Each value reaches kubectl through its own
# file descriptor (a process substitution running the shell's builtin printf).
manifest() {
  local secret_name="$1"; shift
  local args=() pair key var
  for pair in "$@"; do
    key="${pair%%=*}"; var="${pair#*=}"
    exec {fd}< <(printf '%s' "${!var}")
    args+=("--from-file=${key}=/dev/fd/${fd}")
  done
  "$KUBECTL" create secret generic "$secret_name" --namespace "$NAMESPACE" "${args[@]}" \
    --dry-run=client --output yaml
}

emit() {
  if [ "$PRINT" = 1 ]; then
    echo "---"
    cat
  else
    "$KUBECTL" apply -f -
  fi
}

if [ "$PRINT" = 0 ]; then
  "$KUBECTL" create namespace "$NAMESPACE" --dry-run=client --output yaml | "$KUBECTL" apply -f -
fi

if [ -z "${FRACTA_DATABASE_URL:-}" ]; then
  # The in-cluster database: its URL from the password (percent-encoded for the URL).
  encoded="$(printf '%s' "$FRACTA_DB_PASSWORD" | python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))')"
  FRACTA_DATABASE_URL="postgresql://fracta:${encoded}@fracta-postgres:5432/fracta"
  manifest fracta-postgres password=FRACTA_DB_PASSWORD url=FRACTA_DATABASE_URL | emit
else
  manifest fracta-postgres url=FRACTA_DATABASE_URL | emit
fi

pairs=()
for name in $LLM_ENV; do pairs+=("$name=$name"); done
manifest fracta-llm "${pairs[@]}" | emit

pairs=()
for name in $MCP_ENV; do pairs+=("$name=$name"); done
manifest fracta-mcp "${pairs[@]}" | emit
