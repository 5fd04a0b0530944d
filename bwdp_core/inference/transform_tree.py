"""The camera mount from a tree of static transforms (ROS-free): who parents which frame, and T_base_camera.

The node reads the robot's static transforms (``/tf_static``: a URDF through robot_state_publisher, a camera
driver) into a :class:`StaticTransformTree` and asks it for the transform between its ``base_frame`` and the camera's
optical frame, composed through any chain (base_link -> camera_link -> camera_optical_frame). It also tells who else
parents a frame, so the node never gives a frame a second parent.

    tree = StaticTransformTree()
    tree.add("base_link", "camera_link", T1, source="robot_state_publisher")   # -> None, or why it conflicts
    tree.lookup("base_link", "camera_optical_frame")                           # 4x4 T_base_camera, or None
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np

from bwdp_core.frames import invert_transform


@dataclass
class StaticTransform:
    parent: str
    T_parent_child: np.ndarray
    source: Hashable  # who published it (e.g. a publisher id); the node ignores its own


class StaticTransformTree:
    def __init__(self):
        self._edges: dict[str, StaticTransform] = {}  # child -> its parent and transform

    def add(self, parent: str, child: str, T_parent_child: np.ndarray, source: Hashable = None) -> Optional[str]:
        """Record ``parent -> child``; the latest wins (as in tf2). Returns a sentence when ``child`` had a different
        parent before, else None."""
        previous = self._edges.get(child)
        self._edges[child] = StaticTransform(parent, np.asarray(T_parent_child, dtype=np.float64), source)
        if previous is not None and previous.parent != parent:
            return f"frame {child!r} had parent {previous.parent!r}, now {parent!r}"
        return None

    def parent_of(self, child: str) -> Optional[StaticTransform]:
        return self._edges.get(child)

    def _to_root(self, frame: str) -> tuple[str, np.ndarray]:
        """(root frame, T_root_frame) by walking up the parents (a cycle stops the walk)."""
        T = np.eye(4)
        seen = {frame}
        while frame in self._edges:
            edge = self._edges[frame]
            T = edge.T_parent_child @ T
            frame = edge.parent
            if frame in seen:
                break
            seen.add(frame)
        return frame, T

    def lookup(self, target: str, source: str) -> Optional[np.ndarray]:
        """T_target_source (a point in ``source`` coordinates -> ``target`` coordinates), or None when the two frames
        are not connected (yet)."""
        if target == source:
            return np.eye(4)
        root_t, T_root_target = self._to_root(target)
        root_s, T_root_source = self._to_root(source)
        if root_t != root_s:
            return None
        return invert_transform(T_root_target) @ T_root_source
