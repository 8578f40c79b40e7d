#!/usr/bin/env bash
# The serial baseline of the fan-out benchmark: the calls one investigation made (as
# the fakes logged them, up to and including the findings post), made again one after
# another with curl, as a shell script doing the same investigation would. jq reads the
# list and checks every JSON answer.
#
#   bench/serial.sh CALLS.jsonl      (written by bench/fanout_analyze.js --replay)
# Prints "<calls> <wall ms>". Fails on a non-2xx answer.
set -euo pipefail
list=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jq -r '[.method, .url, (.content_type // "-"), (.authorization // "-"), ((.body // "") | @base64)] | @tsv' \
  "$list" > "$tmp/calls.tsv"
n=0
t0=$(date +%s%3N)
while IFS=$'\t' read -r method url ctype auth body; do
  args=(-sS -o "$tmp/answer" -w '%{http_code}' -X "$method" --max-time 30)
  [ "$ctype" != "-" ] && args+=(-H "Content-Type: $ctype")
  [ "$auth" != "-" ] && args+=(-H "Authorization: $auth")
  if [ -n "$body" ]; then
    printf '%s' "$body" | base64 -d > "$tmp/body"
    args+=(--data-binary "@$tmp/body")
  fi
  code=$(curl "${args[@]}" "$url")
  case $code in 2*) ;; *) echo "serial: $method $url -> $code" >&2; exit 1 ;; esac
  jq -e . "$tmp/answer" > /dev/null
  n=$((n + 1))
done < "$tmp/calls.tsv"
t1=$(date +%s%3N)
echo "$n $((t1 - t0))"
