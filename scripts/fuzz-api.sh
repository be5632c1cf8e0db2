#!/usr/bin/env bash
# Fuzzes a running scry server's HTTP API against the OpenAPI document it serves, with
# schemathesis (every check: no 5xx, answers matching the document's schemas, status codes
# and content types it declares, refusals without the token, ...).
#
#   scripts/fuzz-api.sh URL TOKEN [SECONDS]
#
#   URL      the server, e.g. http://127.0.0.1:8750 (https: set SCRY_FUZZ_CA=ca.pem to trust
#            its CA)
#   TOKEN    an admin token (scry_...): `scry server --init-admin`, or the first start's
#   SECONDS  the time budget (default 180)
#
# Use a throw-away server: the fuzzer creates and deletes actions, tokens and rules, and
# flips the kill switch. DELETE /v1/tokens/{id} is left out (the fuzzer would revoke its own
# token, found through GET /v1/tokens; the server's tests cover revocation), and so is the
# positive_data_acceptance check: the API has rules the schema cannot say (a metric action
# needs its metric kind, a value rule's pattern must compile, tag names are not empty), which
# it refuses with a 400 naming the fix. Long polls answer after up to 60 s, so the response
# time limit is 65 s. schemathesis is installed into a venv on first use
# ($SCRY_FUZZ_VENV, default ~/.cache/scry-fuzz-venv). Exits non-zero on any failure.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
url=${1%/}
token=$2
seconds=${3:-180}
venv=${SCRY_FUZZ_VENV:-$HOME/.cache/scry-fuzz-venv}
examples=${SCRY_FUZZ_EXAMPLES:-50}

if [[ ! -x $venv/bin/schemathesis ]]; then
    echo "fuzz-api: installing schemathesis into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet schemathesis
fi

tls=()
if [[ -n ${SCRY_FUZZ_CA:-} ]]; then
    tls=(--tls-verify "$SCRY_FUZZ_CA")
fi

report=$(mktemp -d "${TMPDIR:-/tmp}/scry-fuzz.XXXXXX")
echo "fuzz-api: $url for at most ${seconds}s, $examples examples per operation (reports: $report)" >&2
set +e
"$venv/bin/schemathesis" run "$url/v1/openapi.json" \
    --url "$url" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --exclude-path '/v1/tokens/{id}' \
    --max-response-time 65 \
    --header "Authorization: Bearer $token" \
    --max-examples "$examples" \
    --max-time "$seconds" \
    --request-timeout 70 \
    --report junit --report-dir "$report" \
    --no-color \
    "${tls[@]}"
status=$?
set -e
if [[ $status -ne 0 ]]; then
    echo "fuzz-api: schemathesis found failures (exit $status); see above and $report" >&2
else
    echo "fuzz-api: no failures" >&2
fi
exit $status
