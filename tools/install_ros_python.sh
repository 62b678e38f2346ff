#!/usr/bin/env bash
# install_ros_python.sh - install the real ROS 2 Python packages that are not on the package
# index (launch, launch_ros, message_filters' Python part, sensor_msgs_py) from the source
# snapshots in ../shared/ros/<jazzy|rolling>/ into a TEST venv, plus a stand-in
# composition_interfaces (launch_ros imports it; the project never uses composition).
#
# Usage: tools/install_ros_python.sh VENV_PYTHON [SHARED_ROS_DIR]
#   The distribution comes from the venv's ros-rclpy version: 7.x = Jazzy (jazzy/ snapshots),
#   9.x = Kilted (rolling/ snapshots, the Kilted-era releases). image_geometry is pure Python on
#   cv2 + numpy and only in rolling/ (3.4.0, the same Python code Jazzy ships); diagnostic_updater
#   only in jazzy/ (4.0.0): each is taken from whichever snapshot has it.
# Idempotent: skips the work when the stamp file in the venv records the same sources.
# Additive: pip --no-deps, nothing already in the venv is removed or upgraded (except that a
# missing `lark` / `osrf-pycommon` is installed from the index).
# On a robot none of this is needed: these packages come from the ROS installation (apt).
set -euo pipefail

die() { echo "install_ros_python: ERROR: $*" >&2; exit 1; }
[ $# -ge 1 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
VPY=$1
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${2:-$HERE/../../shared/ros}
[ -x "$VPY" ] || die "not an executable python: $VPY"
[ -d "$SHARED" ] || die "no ROS source snapshots at $SHARED (set the second argument)"
SHARED=$(cd "$SHARED" && pwd)
unset PYTHONPATH || true

RCLPY=$("$VPY" -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))' 2>/dev/null) \
  || die "$VPY has no ros-rclpy wheel: run make setup first"
case "$RCLPY" in
  7.*) SRC=$SHARED/jazzy ;;
  9.*) SRC=$SHARED/rolling ;;
  *) die "unknown ros-rclpy $RCLPY (expected 7.x Jazzy or 9.x Kilted)" ;;
esac
SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
PREFIX=$("$VPY" -c 'import sys; print(sys.prefix)')
STAMP=$PREFIX/.ros-python-installed
IMPORTS='import launch, launch_ros.actions, message_filters, sensor_msgs_py.point_cloud2, image_geometry, diagnostic_updater'
KEY="$RCLPY $SRC image_geometry diagnostic_updater $(cat "$HERE/../test/ros_standins/composition_interfaces/srv/__init__.py" | cksum)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] \
   && "$VPY" -c "$IMPORTS" 2>/dev/null; then
  echo "install_ros_python: already installed ($RCLPY, $SRC)"; exit 0
fi

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
# The snapshots are read-only test material: build copies, never in the shared tree.
for p in launch launch_ros sensor_msgs_py; do cp -r "$SRC/$p" "$TMP/$p"; done
# message_filters is an ament_cmake package (C++ + Python); its Python part is src/message_filters.
mkdir -p "$TMP/message_filters/resource"
cp -r "$SRC/message_filters/src" "$SRC/message_filters/package.xml" "$TMP/message_filters/"
: > "$TMP/message_filters/resource/message_filters"
MF_VER=$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' "$SRC/message_filters/package.xml" | head -1)
cat > "$TMP/message_filters/setup.py" <<EOF
from setuptools import setup
setup(name='message_filters', version='$MF_VER', packages=['message_filters'],
      package_dir={'': 'src'},
      data_files=[('share/ament_index/resource_index/packages', ['resource/message_filters']),
                  ('share/message_filters', ['package.xml'])])
EOF

# image_geometry and diagnostic_updater are ament_cmake packages whose Python part is one folder.
py_part() {  # NAME SNAPSHOT_DIR: a setuptools copy of SNAPSHOT_DIR/NAME (the Python package only)
  local name=$1 dir=$2 ver
  [ -d "$dir/$name" ] || die "no $name Python package in $dir"
  mkdir -p "$TMP/$name/resource"
  cp -r "$dir/$name" "$dir/package.xml" "$TMP/$name/"
  : > "$TMP/$name/resource/$name"
  ver=$(sed -n 's:.*<version>\(.*\)</version>.*:\1:p' "$dir/package.xml" | head -1)
  cat > "$TMP/$name/setup.py" <<PYEOF
from setuptools import setup
setup(name='$name', version='$ver', packages=['$name'],
      data_files=[('share/ament_index/resource_index/packages', ['resource/$name']),
                  ('share/$name', ['package.xml'])])
PYEOF
}
first_with() {  # NAME: the snapshot folder that has NAME, the distribution's own first
  local d
  for d in "$SRC" "$SHARED/jazzy" "$SHARED/rolling"; do
    [ -d "$d/$1" ] && { echo "$d/$1"; return; }
  done
  die "no $1 snapshot under $SHARED"
}
py_part image_geometry "$(first_with image_geometry)"
py_part diagnostic_updater "$(first_with diagnostic_updater)"

PIP=("$VPY" -m pip install -q --disable-pip-version-check)
# launch needs lark (>= 1); lark-parser 0.12 (the rosidl wheels' old name) provides the same
# module and works; install lark only where neither is importable.
"$VPY" -c 'import lark' 2>/dev/null || "${PIP[@]}" lark
"$VPY" -c 'import osrf_pycommon' 2>/dev/null || "${PIP[@]}" --no-deps osrf-pycommon
"$VPY" -c 'import yaml' 2>/dev/null || "${PIP[@]}" PyYAML
"${PIP[@]}" --no-deps --no-build-isolation \
  "$TMP/launch" "$TMP/launch_ros" "$TMP/sensor_msgs_py" "$TMP/message_filters" \
  "$TMP/image_geometry" "$TMP/diagnostic_updater"

# composition_interfaces: stand-in unless a real one is importable (see its docstring).
if ! "$VPY" -c 'import composition_interfaces.srv' 2>/dev/null \
   || [ -f "$SITE/composition_interfaces/STANDIN" ]; then
  rm -rf "$SITE/composition_interfaces"
  cp -r "$HERE/../test/ros_standins/composition_interfaces" "$SITE/composition_interfaces"
  touch "$SITE/composition_interfaces/STANDIN"
fi
"$VPY" -c "$IMPORTS" \
  || die "installed, but the imports fail"
echo "$KEY" > "$STAMP"
echo "install_ros_python: installed launch, launch_ros, message_filters, sensor_msgs_py, image_geometry, diagnostic_updater from $SRC into $PREFIX"
