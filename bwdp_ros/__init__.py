"""bwdp_ros: the ROS 2 visual-odometry node and its helpers (a thin layer over bwdp_core.vo_pipeline).

Read in this order:
  vo_node.py      the node: subscriptions, keep-latest inference thread, publishers, reset, diagnostics
  params.py       every parameter: default, description, check (config/vo.yaml mirrors it)
  conversions.py  ROS messages <-> numpy (images decode through bwdp_core.data.image_msgs)
  runtime.py      keep-latest slot, throttled rejection log, latency window (no rclpy)
  stream.py       start the node as a process, publish frames into it, record its outputs (tests, bench, demos)
  fixtures.py     checkpoints with a known constant motion (tests, bench)
Importing this package does not import rclpy.
"""
