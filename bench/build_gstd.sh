#!/usr/bin/env bash
# Builds and installs the peer the control-plane benchmark compares us with: RidgeRun's GStreamer
# Daemon (gstd) 0.15.1, commit 7889d82 of RidgeRun/gstd-1.x (LGPL-2.1-or-later; only built here,
# none of its code is in this project).
#
#   bench/build_gstd.sh [TARBALL]
#
# The source is TARBALL when given; else ../shared/peers/gstd/gstd-1.x-7889d82.tar.gz beside the
# repository when present; else the same commit downloaded from GitHub. Installs Debian build
# dependencies with apt-get and gstd into PREFIX (default /usr/local): run it as root. Does
# nothing when PREFIX/bin/gstd already reports this version, unless FORCE=1.
set -euo pipefail

COMMIT=7889d824cca5cdb6b155074df91667aedef0485b
VERSION=0.15.1
PREFIX=${PREFIX:-/usr/local}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED_TARBALL=$HERE/../../shared/peers/gstd/gstd-1.x-${COMMIT:0:7}.tar.gz

if [ "${FORCE:-0}" != 1 ] && "$PREFIX/bin/gstd" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "gstd $VERSION is already installed in $PREFIX"
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ $# -ge 1 ]; then
  TARBALL=$(realpath "$1")
elif [ -f "$SHARED_TARBALL" ]; then
  TARBALL=$SHARED_TARBALL
else
  TARBALL=$WORK/gstd.tar.gz
  curl -fsSL -o "$TARBALL" "https://github.com/RidgeRun/gstd-1.x/archive/$COMMIT.tar.gz"
fi
echo "Building gstd from $TARBALL"

# meson.build needs gstreamer, gstreamer-base, gio-unix, json-glib, libdaemon, jansson,
# libsoup-2.4 (not 3.0), libedit; gcc and the GStreamer headers also build the C floor.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  meson ninja-build pkg-config gcc libc6-dev \
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libglib2.0-dev \
  libjson-glib-dev libjansson-dev libsoup2.4-dev libdaemon-dev libedit-dev libncursesw5-dev \
  >/dev/null

tar -xzf "$TARBALL" -C "$WORK"
SOURCE=$(find "$WORK" -mindepth 1 -maxdepth 1 -type d | head -1)
meson setup "$WORK/build" "$SOURCE" --prefix="$PREFIX" --buildtype=release \
  -Denable-tests=disabled -Denable-examples=disabled -Denable-gtk-doc=false \
  -Denable-systemd=disabled -Denable-initd=disabled -Denable-python=disabled >/dev/null
ninja -C "$WORK/build" >/dev/null
ninja -C "$WORK/build" install >/dev/null
ldconfig
"$PREFIX/bin/gstd" --version
