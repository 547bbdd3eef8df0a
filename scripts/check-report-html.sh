#!/usr/bin/env bash
# Renders an r2unet report.html in headless Chromium and fails on a script
# error, a console error, or a missing element; writes a PNG screenshot.
#
#   scripts/check-report-html.sh REPORT.html SCREENSHOT.png
#
# Needs Debian's `chromium` (or $CHROMIUM). The flags keep it off the
# network (the page must not need it) and work as root.
set -euo pipefail
page=$(realpath "$1")
shot=$2
chromium=${CHROMIUM:-chromium}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
    --disable-component-update --disable-sync --user-data-dir="$profile"
    --enable-logging=stderr --v=0 --virtual-time-budget=5000)

fail() { echo "report check FAILED: $*" >&2; exit 1; }

dom=$("$chromium" "${flags[@]}" --dump-dom "file://$page" 2>"$profile/log") \
    || fail "chromium exited with $? (log: $(tail -3 "$profile/log"))"
if grep -E "CONSOLE.*(Uncaught|Error)|:ERROR:CONSOLE" "$profile/log" >/dev/null; then
    fail "console errors: $(grep -E 'CONSOLE' "$profile/log" | head -3)"
fi
grep -q 'data-ready="1"' <<<"$dom" || fail "the page's script did not finish (no data-ready on body)"
if grep -q 'data-error="1"' <<<"$dom"; then fail "a script error was raised"; fi
for id in pooled roc pr per-image; do
    grep -q "id=\"$id\"" <<<"$dom" || fail "missing element #$id"
done
rows=$(grep -o '<tr data-id=' <<<"$dom" | wc -l)
[ "$rows" -gt 0 ] || fail "the per-image table has no rows"
pictures=$(grep -o '<section class="picture"' <<<"$dom" | wc -l)
shown=$(grep -o 'class="view on"' <<<"$dom" | wc -l)
[ "$shown" -eq "$pictures" ] || fail "$shown of $pictures pictures show a view"
if grep -q 'src="http' <<<"$dom"; then fail "the page loads something from the network"; fi

"$chromium" "${flags[@]}" --window-size=1280,2400 --screenshot="$(realpath -m "$shot")" \
    "file://$page" 2>>"$profile/log" >/dev/null || fail "screenshot failed"
[ -s "$shot" ] || fail "no screenshot written"
echo "report check ok: $rows images in the table, $pictures with pictures, screenshot $shot"
