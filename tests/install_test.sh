#!/usr/bin/env bash
# `cmake --install` as a packager runs it, into a temporary prefix: the installed normlab
# finds its report assets and study templates relative to itself, `study new` works from
# them, and the generated bash completion completes commands and options.
#   tests/install_test.sh BUILD_DIR
set -euo pipefail
build="$1"
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
bin="$prefix/bin/normlab"
fail() { echo "install_test: $*" >&2; exit 1; }

"$bin" --version | grep -q "^normlab " || fail "--version"
"$bin" doctor --json > "$prefix/doctor.json"
grep -q "\"path\": \"$prefix/share/normlab/plotly.min.js\"" "$prefix/doctor.json" ||
  fail "doctor does not find the installed report assets: $(grep -A3 '"report"' "$prefix/doctor.json")"
"$bin" study new --list | grep -q "^s0 .*$prefix/share/normlab/studies/s0_norm_heads.toml" ||
  fail "study new --list does not use the installed templates: $("$bin" study new --list)"
(cd "$prefix" && "$bin" study new mine --from quickstart >/dev/null) || fail "study new"
grep -q '^name = "mine"' "$prefix/mine.toml" || fail "study new did not set the name"
(cd "$prefix" && "$bin" study run mine.toml --smoke --quiet --threads 1 >"$prefix/run.log" 2>&1) ||
  fail "study run of the new study: $(cat "$prefix/run.log")"
grep -q "plotly" "$prefix/runs/mine-smoke/report.html" || fail "the report has no plotly inlined"

source "$prefix/share/bash-completion/completions/normlab"
COMP_WORDS=(normlab stu); COMP_CWORD=1; _normlab
[ "${COMPREPLY[*]}" = "study" ] || fail "completion of 'stu': ${COMPREPLY[*]}"
COMP_WORDS=(normlab study run --s); COMP_CWORD=3; _normlab
[ "${COMPREPLY[*]}" = "--set --smoke" ] || fail "completion of 'study run --s': ${COMPREPLY[*]}"
echo "install_test: ok ($prefix)"
