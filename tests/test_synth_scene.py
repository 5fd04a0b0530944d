"""bwdp synth scene layout and textures: road coordinates, clearances, texture lookup."""
import numpy as np

from bwdp_core.synth import make_scene
from bwdp_core.synth import textures as tx
from bwdp_core.synth.scene import FACADE_OFFSET, LANE_OFFSET, MAX_HEADING, make_path


def test_road_coordinates_invert_offset_point():
    path = make_path(3, 400.0)
    assert np.any(path.curvature != 0) and np.any(path.curvature == 0)
    rng = np.random.default_rng(0)
    s = rng.uniform(1.0, path.total_length - 1.0, 500)
    d = rng.uniform(-8.0, 8.0, 500)
    x, z, _ = path.offset_point(s, d)
    s2, d2, found = path.road_coordinates(x.astype(np.float32), z.astype(np.float32), 0.0, path.total_length, 9.0)
    assert found.all()
    np.testing.assert_allclose(s2, s, atol=2e-3)
    np.testing.assert_allclose(d2, d, atol=2e-3)


def test_path_is_smooth_and_bounded():
    path = make_path(5, 1000.0)
    s = np.arange(0.0, path.total_length, 0.25)
    x, z, heading = path.point(s)
    step = np.hypot(np.diff(x), np.diff(z))
    np.testing.assert_allclose(step, 0.25, atol=1e-3)  # arc length parametrisation, no jumps between pieces
    assert np.all(np.abs(np.diff(heading)) < 0.25 / 25.0 + 1e-9)  # curvature <= 1/25 m: smooth turns
    assert np.all(np.abs(heading) <= MAX_HEADING + 1e-9)


def test_objects_keep_clear_of_the_lane_and_buildings_of_the_road():
    scene = make_scene(2, path_length=600.0)
    path = scene.path
    s = np.arange(0.0, path.total_length, 0.25)
    lane_x, lane_z, _ = path.offset_point(s, LANE_OFFSET)
    centre_x, centre_z, _ = path.point(s)

    def min_dist(points, ref_x, ref_z):
        return np.sqrt((points[:, None, 0] - ref_x[None]) ** 2 + (points[:, None, 1] - ref_z[None]) ** 2).min(1)

    footprints = scene.box_corners[:, :, [0, 2]]  # [n, 8, 2]
    lane = min_dist(footprints.reshape(-1, 2), lane_x, lane_z).reshape(len(footprints), 8).min(1)
    assert lane.min() > 1.5  # nothing in the camera's way
    buildings = np.isin(scene.boxes.material, tx.FACADES)
    centre = min_dist(footprints[buildings].reshape(-1, 2), centre_x, centre_z)
    assert centre.min() > FACADE_OFFSET - 0.6
    pillars = min_dist(scene.cylinders.axis, lane_x, lane_z) - scene.cylinders.radius
    assert pillars.min() > 1.5
    assert buildings.sum() > 40 and len(scene.cylinders) > 20  # a street, not an empty plane


def test_texture_atlas_and_trilinear_lookup():
    atlas = tx.make_atlas(0)
    assert atlas.texels.dtype == np.float32 and atlas.texels.min() >= 0 and atlas.texels.max() <= 1
    assert np.array_equal(atlas.texels, tx.make_atlas(0).texels)
    for material in range(tx.NUM_MATERIALS):  # every material has texture worth matching
        level0 = atlas.texels[atlas.base[material, 0]:atlas.base[material, 1]]
        assert level0.std() > 0.03
    u = np.linspace(-300.0, 300.0, 1000, dtype=np.float32)
    v = np.linspace(5.0, 90.0, 1000, dtype=np.float32)
    mat = np.full(1000, tx.BRICK)
    a = tx.sample(atlas, mat, u, v, np.zeros(1000, np.float32))
    b = tx.sample(atlas, mat, u + tx.TILE, v - tx.TILE, np.zeros(1000, np.float32))
    np.testing.assert_allclose(a, b, atol=1e-4)  # tiles wrap
    lod = np.linspace(0.0, 6.0, 1000, dtype=np.float32)
    c = tx.sample(atlas, mat, np.full(1000, 40.3, np.float32), np.full(1000, 17.7, np.float32), lod)
    assert np.abs(np.diff(c, axis=0)).max() < 0.05  # blending across mip levels is continuous
    coarse = tx.sample(atlas, mat, u, v, np.full(1000, 6.0, np.float32))
    assert coarse.std(0).max() < 0.5 * a.std(0).min()  # high mip levels are the filtered (blurred) texture
