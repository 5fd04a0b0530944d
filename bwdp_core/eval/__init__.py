"""Evaluation: depth metrics (KITTI Eigen protocol), trajectory metrics (KITTI t_err/r_err, evo ATE/RPE), offline VO,
export (the `bwdp` commands that drive them are in bwdp_core.commands). The public entry points are:

- ``depth_metrics.compute_depth_metrics`` / ``evaluate_depth_image`` / ``compute_depth_errors`` / ``garg_crop_mask``
- ``kitti_velodyne.velodyne_depth_map`` / ``project_velodyne_to_depth``
- ``eval_depth.evaluate_checkpoint`` (+ ``eigen_samples``, ``folder_samples``, ``data_root_samples``)
- ``odometry.evaluate_odometry`` / ``kitti_odometry_errors`` / ``align_and_associate``
- ``trajectory_io.read_trajectory`` / ``write_trajectory``
- ``vo.run_vo`` / ``chain_relative_poses``;  ``export.export_models``;  ``plots.depth_strip`` /
  ``plot_trajectories_top_view``
"""
