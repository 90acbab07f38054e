#!/bin/bash
# Builds the three executables with SwiftPM, assembles Flowtop.app with the filter extension inside,
# and signs everything for Developer ID distribution. SwiftPM cannot make .app / .systemextension
# bundles by itself; this script is the Xcode-free replacement.
#
# NOT YET RUN ON A MAC. Needs Xcode's command line tools (swift, codesign) on macOS 13+.
#
#   TEAM_ID=ABCDE12345 \
#   SIGN_ID="Developer ID Application: Example Corp (ABCDE12345)" \
#   APP_PROFILE=~/profiles/flowtop_app.provisionprofile \
#   FILTER_PROFILE=~/profiles/flowtop_filter.provisionprofile \
#   scripts/bundle.sh
set -euo pipefail

: "${TEAM_ID:?set TEAM_ID to your ten-character Team ID}"
: "${SIGN_ID:?set SIGN_ID to your Developer ID Application identity}"
: "${APP_PROFILE:?set APP_PROFILE to the provisioning profile for com.flowtop.app}"
: "${FILTER_PROFILE:?set FILTER_PROFILE to the provisioning profile for com.flowtop.filter}"
[[ "$TEAM_ID" =~ ^[A-Z0-9]{10}$ ]] || { echo "TEAM_ID must be ten upper-case letters or digits" >&2; exit 2; }

cd "$(dirname "$0")/.."
swift build -c release --product com.flowtop.filter
swift build -c release --product Flowtop
# The bare daemon gets its identifier and version from an Info.plist embedded in the binary.
swift build -c release --product flowtop-bridge \
  -Xlinker -sectcreate -Xlinker __TEXT -Xlinker __info_plist -Xlinker "$PWD/Support/Bridge-Info.plist"
BIN="$(swift build -c release --show-bin-path)"

OUT=build
APP="$OUT/Flowtop.app"
SYSX="$APP/Contents/Library/SystemExtensions/com.flowtop.filter.systemextension"
rm -rf "$OUT"
mkdir -p "$APP/Contents/MacOS" "$SYSX/Contents/MacOS"

fill() { sed "s/__TEAM_ID__/$TEAM_ID/g" "$1" > "$2"; }
cp "$BIN/Flowtop" "$APP/Contents/MacOS/Flowtop"
cp "$BIN/com.flowtop.filter" "$SYSX/Contents/MacOS/com.flowtop.filter"
fill Support/App-Info.plist "$APP/Contents/Info.plist"
fill Support/Filter-Info.plist "$SYSX/Contents/Info.plist"
fill Support/App.entitlements "$OUT/app.entitlements"
fill Support/Filter.entitlements "$OUT/filter.entitlements"
# Apple wants signed entitlements as a plain XML property list without comments ("Creating
# distribution-signed code for macOS"); the files in Support/ carry comments, plutil drops them.
plutil -convert xml1 "$OUT/app.entitlements"
plutil -convert xml1 "$OUT/filter.entitlements"
cp "$APP_PROFILE" "$APP/Contents/embedded.provisionprofile"
cp "$FILTER_PROFILE" "$SYSX/Contents/embedded.provisionprofile"
cp "$BIN/flowtop-bridge" "$OUT/flowtop-bridge"

# Inside out: the extension first, then the app that contains it. Hardened runtime everywhere.
codesign --force --options runtime --timestamp --entitlements "$OUT/filter.entitlements" --sign "$SIGN_ID" "$SYSX"
codesign --force --options runtime --timestamp --entitlements "$OUT/app.entitlements" --sign "$SIGN_ID" "$APP"
codesign --force --options runtime --timestamp --identifier com.flowtop.bridge --sign "$SIGN_ID" "$OUT/flowtop-bridge"

codesign --verify --strict --deep --verbose=2 "$APP"
codesign --verify --strict --verbose=2 "$OUT/flowtop-bridge"
echo "built $APP and $OUT/flowtop-bridge; next: notarize (see README.md): macOS will not activate the extension before that"
