#!/usr/bin/env bash
# Installs ticklane as a systemd service (docs/operations.md, "Running as a service"):
#   PREFIX/bin/ticklane, /etc/ticklane/ticklane.toml (config/systemd/ticklane.toml; an existing one is kept and
#   checked), /etc/systemd/system/ticklane.service (config/systemd/ticklane.service), and a system user
#   `ticklane`. Then: systemctl enable --now ticklane.
#
#   sudo scripts/install.sh
#
# Environment:
#   PREFIX        where the binary goes (default /usr/local)
#   DESTDIR       stage everything under this directory instead (no user is created, systemd is not told)
#   TICKLANE_BIN  the binary to install (default: target/release/ticklane, built with cargo if missing)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
bin=${TICKLANE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/ticklane}
if [ ! -x "$bin" ]; then
    (cd "$root" && cargo build --release --locked)
fi

install -D -m 0755 "$bin" "$DESTDIR$PREFIX/bin/ticklane"
conf=$DESTDIR/etc/ticklane/ticklane.toml
if [ -e "$conf" ]; then
    echo "keeping $conf"
else
    install -D -m 0644 "$root/config/systemd/ticklane.toml" "$conf"
    echo "installed $conf"
fi
# A config the service would refuse is better found now than at `systemctl start`.
"$DESTDIR$PREFIX/bin/ticklane" check --config "$conf"
unit=$DESTDIR/etc/systemd/system/ticklane.service
mkdir -p "$(dirname "$unit")"
sed "s|/usr/local/bin/ticklane|$PREFIX/bin/ticklane|" "$root/config/systemd/ticklane.service" >"$unit"
chmod 0644 "$unit"
echo "installed $unit"

if [ -n "$DESTDIR" ]; then
    exit 0
fi
if ! id ticklane >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /var/lib/ticklane --shell /usr/sbin/nologin ticklane
    echo "created user ticklane"
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "next: systemctl enable --now ticklane; journalctl -u ticklane -f; curl -s 127.0.0.1:9187/metrics"
else
    echo "systemd is not running on this host: the unit is installed for when it is"
fi
