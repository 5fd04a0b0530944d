"""The procedural street: a road path with turns, buildings on both sides, and occluders (pillars, crates, parked cars,
an optional moving car).

World frame: the optical frame of the first camera (x right, y down, z forward); the ground is the plane y = +1.6
(the camera drives 1.6 m above it). The road is a sequence of pieces (straights and circular arcs) parametrised by arc
length s; a point near the road has road coordinates (s, d) with d the signed lateral offset (positive to the right).
Every random choice comes from its own RNG stream keyed on (seed, stream), so a longer scene with the same seed extends
a shorter one without changing it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bwdp_core.synth import textures as tx

CAMERA_HEIGHT = 1.6
GROUND_Y = CAMERA_HEIGHT  # y is down; the camera's y is 0
LANE_OFFSET = 1.6  # the camera drives this far right of the centre line
FACADE_OFFSET = 7.5  # building fronts, from the centre line
START_S = 30.0  # arc length of the first camera position (road behind the camera)
STEP_M = 1.0  # metres per frame along the road
MAX_HEADING = np.deg2rad(45.0)  # heading stays within +-45 deg of the start: the road never folds back on itself

# streams of random numbers (so extending the scene never changes its beginning)
_PATH, _LEFT, _RIGHT, _PILLARS, _CRATES, _CARS, _MOVING, _TREES, _START = range(1, 10)


def _right_normal(heading):
    """Unit vector (x, z) pointing right of a direction of travel with this heading (heading 0 = +z)."""
    return np.cos(heading), -np.sin(heading)


@dataclass(frozen=True)
class RoadPath:
    """Pieces of constant curvature (0 = straight), each with start arc length, length, start point, start heading."""

    s0: np.ndarray
    length: np.ndarray
    x0: np.ndarray
    z0: np.ndarray
    heading0: np.ndarray
    curvature: np.ndarray

    @property
    def total_length(self) -> float:
        return float(self.s0[-1] + self.length[-1])

    def point(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre-line position (x, z) and heading at arc length(s) s."""
        s = np.asarray(s, dtype=np.float64)
        i = np.clip(np.searchsorted(self.s0, s, side="right") - 1, 0, len(self.s0) - 1)
        u = s - self.s0[i]
        h0, k = self.heading0[i], self.curvature[i]
        straight = np.abs(k) < 1e-12
        k_safe = np.where(straight, 1.0, k)
        heading = h0 + k * u
        x = np.where(straight, self.x0[i] + u * np.sin(h0), self.x0[i] + (np.cos(h0) - np.cos(heading)) / k_safe)
        z = np.where(straight, self.z0[i] + u * np.cos(h0), self.z0[i] + (np.sin(heading) - np.sin(h0)) / k_safe)
        return x, z, heading

    def offset_point(self, s, d):
        """World (x, z) and heading of the point at road coordinates (s, d)."""
        x, z, heading = self.point(s)
        nx, nz = _right_normal(heading)
        return x + d * nx, z + d * nz, heading

    def road_coordinates(self, x: np.ndarray, z: np.ndarray, s_min: float, s_max: float,
                         max_abs_d: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s, d, found) of world points (x, z) [P] against the pieces overlapping [s_min, s_max].

        A point takes the piece where |d| is smallest among those whose normal through it falls inside the piece;
        found is False where no piece within max_abs_d claims it.
        """
        best_d = np.full(x.shape, np.inf, dtype=np.float32)
        best_s = np.zeros(x.shape, dtype=np.float32)
        first = max(int(np.searchsorted(self.s0, s_min, side="right")) - 1, 0)
        last = int(np.searchsorted(self.s0, s_max, side="right"))
        for i in range(first, min(last, len(self.s0))):
            h0, k, length = self.heading0[i], self.curvature[i], self.length[i]
            px, pz = x - np.float32(self.x0[i]), z - np.float32(self.z0[i])
            if abs(k) < 1e-12:
                along = px * np.float32(np.sin(h0)) + pz * np.float32(np.cos(h0))
                nx, nz = _right_normal(h0)
                d = px * np.float32(nx) + pz * np.float32(nz)
            else:
                nx, nz = _right_normal(h0)
                cx, cz = nx / k, nz / k  # centre of the arc, relative to its start point
                vx, vz = px - np.float32(cx), pz - np.float32(cz)
                radius = np.sqrt(vx * vx + vz * vz)
                sign = np.float32(np.sign(k))
                d = np.float32(1.0 / k) - sign * radius
                heading = np.arctan2(sign * vz, -sign * vx)  # direction of travel where the normal passes
                turned = (heading - np.float32(h0) + np.float32(np.pi)) % np.float32(2 * np.pi) - np.float32(np.pi)
                along = turned / np.float32(k)
            ad = np.abs(d)
            inside = (along >= -0.01) & (along <= length + 0.01) & (ad < np.abs(best_d)) & (ad <= max_abs_d)
            best_d = np.where(inside, d, best_d)
            best_s = np.where(inside, along + np.float32(self.s0[i]), best_s)
        found = np.isfinite(best_d)
        return best_s, np.where(found, best_d, np.float32(0.0)), found


def make_path(seed: int, length: float) -> RoadPath:
    """Straight start (the camera's first frames), then alternating arcs (radius 25-45 m) and straights."""
    rng = np.random.default_rng([seed, _PATH])
    s0, lengths, x0, z0, h0, kappa = [], [], [], [], [], []
    s, x, z, heading = 0.0, -LANE_OFFSET, -START_S, 0.0

    def add(piece_length, curvature):
        nonlocal s, x, z, heading
        s0.append(s), lengths.append(piece_length), x0.append(x), z0.append(z), h0.append(heading)
        kappa.append(curvature)
        path = RoadPath(*(np.array(a[-1:], dtype=np.float64) for a in (s0, lengths, x0, z0, h0, kappa)))
        xe, ze, he = path.point(s + piece_length)
        s, x, z, heading = s + piece_length, float(xe), float(ze), float(he)

    add(START_S + rng.uniform(5.0, 15.0), 0.0)
    while s < length:
        while True:
            target = rng.uniform(-MAX_HEADING, MAX_HEADING)
            if abs(target - heading) >= np.deg2rad(20.0):
                break
        radius = rng.uniform(25.0, 45.0)
        turn = target - heading
        add(abs(turn) * radius, np.sign(turn) / radius)
        add(rng.uniform(10.0, 45.0), 0.0)
    return RoadPath(*(np.array(a, dtype=np.float64) for a in (s0, lengths, x0, z0, h0, kappa)))


@dataclass
class Boxes:
    """Boxes standing on the ground, rotated about the vertical axis.

    centre [n, 3] world; yaw [n] (local z axis = direction (sin yaw, 0, cos yaw)); half [n, 3] half sizes along the
    local axes; material [n] int; tint [n, 3]; u_offset [n] metres added to texture coordinates.
    """

    centre: np.ndarray
    yaw: np.ndarray
    half: np.ndarray
    material: np.ndarray
    tint: np.ndarray
    u_offset: np.ndarray

    def __len__(self):
        return len(self.yaw)

    @staticmethod
    def from_list(rows: list[tuple]) -> "Boxes":
        if not rows:
            z3 = np.zeros((0, 3))
            return Boxes(z3, np.zeros(0), z3, np.zeros(0, dtype=np.int64), z3, np.zeros(0))
        centre, yaw, half, material, tint, u_offset = zip(*rows)
        return Boxes(np.array(centre, dtype=np.float64), np.array(yaw, dtype=np.float64),
                     np.array(half, dtype=np.float64), np.array(material, dtype=np.int64),
                     np.array(tint, dtype=np.float64), np.array(u_offset, dtype=np.float64))

    def corners(self) -> np.ndarray:
        """World corners [n, 8, 3]."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        local = signs[None] * self.half[:, None, :]
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        wx = c * local[..., 0] + s * local[..., 2]
        wz = -s * local[..., 0] + c * local[..., 2]
        return np.stack([wx, local[..., 1], wz], axis=-1) + self.centre[:, None, :]

    def concat(self, other: "Boxes") -> "Boxes":
        return Boxes(*(np.concatenate([a, b]) for a, b in zip(
            (self.centre, self.yaw, self.half, self.material, self.tint, self.u_offset),
            (other.centre, other.yaw, other.half, other.material, other.tint, other.u_offset))))


@dataclass
class Cylinders:
    """Vertical pillars standing on the ground: axis (x, z) [n, 2], radius [n], top y [n], material, tint, u_offset."""

    axis: np.ndarray
    radius: np.ndarray
    top: np.ndarray
    material: np.ndarray
    tint: np.ndarray
    u_offset: np.ndarray

    def __len__(self):
        return len(self.radius)

    def bounding_boxes(self) -> Boxes:
        n = len(self)
        height = GROUND_Y - self.top
        centre = np.stack([self.axis[:, 0], (GROUND_Y + self.top) / 2, self.axis[:, 1]], axis=1)
        half = np.stack([self.radius, height / 2, self.radius], axis=1)
        return Boxes(centre, np.zeros(n), half, self.material, self.tint, self.u_offset)


@dataclass
class Scene:
    """Everything needed to render any view of one procedural street (see make_scene)."""

    seed: int
    path: RoadPath
    boxes: Boxes  # static boxes: buildings, crates, parked cars
    cylinders: Cylinders
    atlas: tx.TextureAtlas
    moving_object: bool = False
    box_corners: np.ndarray = field(init=False, repr=False)
    cylinder_corners: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.box_corners = self.boxes.corners()
        self.cylinder_corners = self.cylinders.bounding_boxes().corners()

    def camera_pose(self, s: float) -> np.ndarray:
        """Camera-to-world 4x4 (optical axes) of the camera driving the right lane at arc length s, 1.6 m up."""
        x, z, heading = self.path.offset_point(s, LANE_OFFSET)
        c, sn = np.cos(float(heading)), np.sin(float(heading))
        pose = np.eye(4)
        pose[:3, :3] = [[c, 0.0, sn], [0.0, 1.0, 0.0], [-sn, 0.0, c]]
        pose[:3, 3] = [float(x), GROUND_Y - CAMERA_HEIGHT, float(z)]
        return pose

    def moving_box(self, frame_index: int) -> Boxes:
        """The oncoming car of frame ``frame_index`` (empty when the scene has no moving object).

        It drives the left lane towards the camera at 1 m/frame, from 45 m ahead of the camera to 25 m behind it, then
        starts over.
        """
        if not self.moving_object:
            return Boxes.from_list([])
        rng = np.random.default_rng([self.seed, _MOVING])
        tint = rng.uniform(0.3, 1.0, size=3)
        ahead = 45.0 - (2.0 * STEP_M * frame_index) % 70.0
        s = START_S + STEP_M * frame_index + ahead
        x, z, heading = self.path.offset_point(s, -1.2)
        return Boxes.from_list([((float(x), GROUND_Y - 0.75, float(z)), float(heading), (0.85, 0.75, 2.1), tx.CAR,
                                 tuple(tint), 3.0 * frame_index)])


def _min_distance_to_path(path: RoadPath, samples: np.ndarray, s_samples: np.ndarray, points: np.ndarray,
                          s_centre: float, window: float = 40.0) -> float:
    """Smallest distance from points [m, 2] (x, z) to the centre line sampled around s_centre."""
    sel = np.abs(s_samples - s_centre) <= window
    diff = points[:, None, :] - samples[None, sel, :]
    return float(np.sqrt((diff ** 2).sum(-1)).min()) if sel.any() else np.inf


def _footprint(x, z, heading, half_across, half_along):
    """(x, z) of the 4 corners and 4 edge midpoints of a box footprint."""
    nx, nz = _right_normal(heading)
    tx_, tz_ = np.sin(heading), np.cos(heading)
    pts = []
    for a in (-1, 0, 1):
        for b in (-1, 0, 1):
            if a == 0 and b == 0:
                continue
            pts.append((x + a * half_across * nx + b * half_along * tx_,
                        z + a * half_across * nz + b * half_along * tz_))
    return np.array(pts)


def make_scene(seed: int = 0, path_length: float = 300.0, moving_object: bool = False) -> Scene:
    """Build the street for ``seed``: road of at least ``path_length`` metres, buildings, pillars, crates, parked cars.

    The textures are built here too (about 0.2 s), so render many frames from one scene.
    """
    path = make_path(seed, path_length)
    total = path.total_length
    s_samples = np.arange(0.0, total, 0.5)
    cx, cz, _ = path.point(s_samples)
    samples = np.stack([cx, cz], axis=1)
    rows: list[tuple] = []

    def clear(x, z, heading, half_across, half_along, s_centre, minimum):
        pts = _footprint(x, z, heading, half_across, half_along)
        return _min_distance_to_path(path, samples, s_samples, pts, s_centre) >= minimum

    # buildings: a row on each side, fronts at FACADE_OFFSET
    for side, stream in ((-1.0, _LEFT), (1.0, _RIGHT)):
        rng = np.random.default_rng([seed, stream])
        s = 0.0
        while s < total:
            width, depth, height = rng.uniform(6.0, 16.0), rng.uniform(8.0, 14.0), rng.uniform(7.0, 22.0)
            material = tx.FACADES[rng.integers(len(tx.FACADES))]
            tint = rng.uniform(0.75, 1.15, size=3)
            u_off = rng.uniform(0.0, 8.0)
            gap = rng.uniform(4.0, 7.0) if rng.random() < 0.15 else rng.uniform(0.0, 1.0)
            s_centre = s + width / 2
            x, z, heading = path.offset_point(s_centre, side * (FACADE_OFFSET + depth / 2))
            if s_centre < total and clear(x, z, heading, depth / 2, width / 2, s_centre, FACADE_OFFSET - 0.4):
                rows.append(((float(x), GROUND_Y - height / 2, float(z)), float(heading),
                             (depth / 2, height / 2, width / 2), material, tuple(tint), u_off))
            s += width + gap

    # crates and kiosks on the pavements
    rng = np.random.default_rng([seed, _CRATES])
    s = 0.0
    while s < total:
        s += rng.uniform(4.0, 15.0)
        side = rng.choice((-1.0, 1.0))
        d = side * rng.uniform(4.9, 6.4)
        sx, sy, sz = rng.uniform(0.5, 1.4), rng.uniform(0.5, 1.8), rng.uniform(0.6, 2.0)
        x, z, heading = path.offset_point(s, d)
        yaw = float(heading) + rng.uniform(-0.5, 0.5)
        tint = rng.uniform(0.6, 1.2, size=3)
        u_off = rng.uniform(0.0, 8.0)
        if s < total and clear(x, z, yaw, sx / 2, sz / 2, s, 4.2):
            rows.append(((float(x), GROUND_Y - sy / 2, float(z)), yaw, (sx / 2, sy / 2, sz / 2), tx.CRATE,
                         tuple(tint), u_off))

    # parked cars along the left curb
    rng = np.random.default_rng([seed, _CARS])
    s = 0.0
    while s < total:
        s += rng.uniform(6.0, 30.0)
        length, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.6, 1.85), rng.uniform(1.35, 1.7)
        tint = rng.uniform(0.2, 1.0, size=3)
        u_off = rng.uniform(0.0, 8.0)
        x, z, heading = path.offset_point(s, -3.0)
        if s < total and clear(x, z, heading, width / 2, length / 2, s, 1.8):
            rows.append(((float(x), GROUND_Y - height / 2, float(z)), float(heading),
                         (width / 2, height / 2, length / 2), tx.CAR, tuple(tint), u_off))

    # trees on the pavements: a trunk (pillar) under a box of foliage well above the camera
    rng = np.random.default_rng([seed, _TREES])
    pillars = []
    s = 0.0
    while s < total:
        s += rng.uniform(8.0, 30.0)
        side = rng.choice((-1.0, 1.0))
        trunk_height, crown = rng.uniform(3.2, 4.2), rng.uniform(1.0, 1.5, size=3)
        crown[1] = rng.uniform(0.9, 1.6)
        tint = rng.uniform(0.7, 1.2, size=3)
        u_off = rng.uniform(0.0, 8.0)
        x, z, heading = path.offset_point(s, side * rng.uniform(5.2, 6.2))
        if s < total and clear(x, z, heading, crown[0], crown[2], s, 4.0):
            centre_y = GROUND_Y - trunk_height - crown[1] + 0.3
            rows.append(((float(x), centre_y, float(z)), float(heading) + rng.uniform(-0.6, 0.6), tuple(crown),
                         tx.FOLIAGE, tuple(tint), u_off))
            pillars.append(((float(x), float(z)), rng.uniform(0.15, 0.25), GROUND_Y - trunk_height + 0.2,
                            tx.BARK, tint, u_off))

    # pillars (lamp posts, columns) just behind the curbs
    rng = np.random.default_rng([seed, _PILLARS])
    s = 0.0
    while s < total:
        s += rng.uniform(4.0, 13.0)
        side = rng.choice((-1.0, 1.0))
        radius, height = rng.uniform(0.12, 0.4), rng.uniform(2.5, 7.0)
        tint = rng.uniform(0.6, 1.2, size=3)
        u_off = rng.uniform(0.0, 8.0)
        x, z, _ = path.offset_point(s, side * rng.uniform(4.1, 4.6))
        if s < total:
            pillars.append(((float(x), float(z)), radius, GROUND_Y - height, tx.PILLAR, tint, u_off))
    # every street starts with two posts and a kiosk close to the camera's lane, so that even a 3-frame sequence
    # from the start has occlusions with large parallax
    rng = np.random.default_rng([seed, _START])
    for s_ahead, d in ((rng.uniform(7.0, 10.0), 4.2), (rng.uniform(15.0, 19.0), -4.3)):
        x, z, _ = path.offset_point(START_S + s_ahead, d)
        pillars.append(((float(x), float(z)), rng.uniform(0.3, 0.4), GROUND_Y - rng.uniform(3.5, 6.0), tx.PILLAR,
                        rng.uniform(0.6, 1.2, size=3), rng.uniform(0.0, 8.0)))
    size = rng.uniform(1.1, 1.6, size=3)
    size[1] = rng.uniform(1.6, 2.3)
    x, z, heading = path.offset_point(START_S + rng.uniform(11.0, 14.0), -5.2)
    rows.append(((float(x), GROUND_Y - size[1] / 2, float(z)), float(heading), tuple(size / 2), tx.CRATE,
                 tuple(rng.uniform(0.6, 1.2, size=3)), rng.uniform(0.0, 8.0)))

    if pillars:
        axis, radius, top, material, tint, u_off = zip(*pillars)
        cylinders = Cylinders(np.array(axis), np.array(radius), np.array(top), np.array(material, dtype=np.int64),
                              np.array(tint), np.array(u_off))
    else:
        cylinders = Cylinders(np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64),
                              np.zeros((0, 3)), np.zeros(0))
    return Scene(seed=seed, path=path, boxes=Boxes.from_list(rows), cylinders=cylinders, atlas=tx.make_atlas(seed),
                 moving_object=moving_object)
