#!/usr/bin/env bash
# ensure_vision_msgs.sh - vision_msgs (generated with rosidl) in a TEST venv, built at most once.
#
# Usage: tools/ensure_vision_msgs.sh VENV_PYTHON [SHARED_ROS_DIR]
# Builds ../shared/ros/msgs/vision_msgs into the venv's own prefix with
# ../shared/ros/tools/build_vision_msgs.sh (about a minute) unless it is already there.
# Cache, keyed on the venv's ros-rclpy version (7.x Jazzy / 9.x Kilted), the vision_msgs version
# and the venv's path (the build bakes its prefix into CMake files):
#   1. a stamp in the venv: a second `make test` does nothing;
#   2. a tarball of the installed files under ${XDG_CACHE_HOME:-~/.cache}/m4sam_ros: a venv
#      rebuilt at the same path gets them back in a second instead of a rebuild.
# On a robot none of this is needed: apt install ros-<distro>-vision-msgs.
set -euo pipefail

die() { echo "ensure_vision_msgs: ERROR: $*" >&2; exit 1; }
[ $# -ge 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
VPY=$1
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${2:-$HERE/../../shared/ros}
[ -x "$VPY" ] || die "not an executable python: $VPY"
SRC=$SHARED/msgs/vision_msgs
BUILD=$SHARED/tools/build_vision_msgs.sh
[ -f "$SRC/package.xml" ] || die "no vision_msgs sources at $SRC"
[ -f "$BUILD" ] || die "no build script at $BUILD"
unset PYTHONPATH || true

RCLPY=$("$VPY" -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))' 2>/dev/null) \
  || die "$VPY has no ros-rclpy wheel: run make setup first"
PREFIX=$("$VPY" -c 'import os, sys; print(os.path.realpath(sys.prefix))')
VER=$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' "$SRC/package.xml" | head -1)
KEY="vision_msgs-$VER rclpy-$RCLPY $PREFIX"
STAMP=$PREFIX/.vision-msgs-built
MANIFEST=$PREFIX/share/vision_msgs/vmsgs_install_manifest.txt
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/m4sam_ros
TARBALL=$CACHE_DIR/vision_msgs-$VER-rclpy-$RCLPY-$(printf '%s' "$PREFIX" | cksum | cut -d' ' -f1).tar.gz

works() {
  "$VPY" -c 'from vision_msgs.msg import Detection2DArray, Detection2D, ObjectHypothesisWithPose' 2>/dev/null
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && works; then
  echo "ensure_vision_msgs: cached ($KEY)"; exit 0
fi
if [ -f "$TARBALL" ]; then
  tar -C "$PREFIX" -xzf "$TARBALL"
  if works; then
    echo "$KEY" > "$STAMP"; echo "ensure_vision_msgs: restored from $TARBALL"; exit 0
  fi
  echo "ensure_vision_msgs: cached tarball does not import; rebuilding" >&2
fi

DOMAIN=${VMSGS_TEST_DOMAIN_ID:-$(( 150 + RANDOM % 80 ))}
VMSGS_TEST_DOMAIN_ID=$DOMAIN bash "$BUILD" "$VPY" "$SRC" "$PREFIX"
works || die "vision_msgs built but does not import"
echo "$KEY" > "$STAMP"
if [ -f "$MANIFEST" ]; then
  mkdir -p "$CACHE_DIR"
  # The manifest lists absolute paths under PREFIX; store them relative to it.
  (cd "$PREFIX" && sed "s:^$PREFIX/::" "$MANIFEST" | tar -czf "$TARBALL.tmp" -T - "${MANIFEST#"$PREFIX"/}") \
    && mv "$TARBALL.tmp" "$TARBALL" && echo "ensure_vision_msgs: cached in $TARBALL" \
    || { rm -f "$TARBALL.tmp"; echo "ensure_vision_msgs: could not write the cache (not fatal)" >&2; }
fi
