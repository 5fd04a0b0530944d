"""bwdp_ros: the ROS 2 visual-odometry node (a thin layer over bwdp_core.inference).

Read in this order:
  vo_node.py      the node: subscriptions, keep-latest inference thread, publishers, reset, diagnostics
  params.py       the node-only parameters, composed with the processing settings (bwdp_core.inference.settings);
                  ros/config/vo.yaml mirrors both
  conversions.py  ROS messages <-> numpy (images decode through bwdp_core.data.image_msgs)
  runtime.py      keep-latest slot, throttled rejection log, latency window (no rclpy)
The machinery that starts the node as a process and streams frames into it (tests, benchmarks, the demo) is in
bwdp_tools. Importing this package does not import rclpy.
"""
