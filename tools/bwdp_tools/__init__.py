"""bwdp_tools: the demo, test and benchmark helpers (never installed on a robot); may import bwdp_core and bwdp_ros,
and nothing imports it.

  processes.py      the one process manager (own process group, log file, PR_SET_PDEATHSIG, SIGINT -> SIGTERM ->
                    SIGKILL) and the one ROS environment (``ros_env``: localhost discovery, own ROS_DOMAIN_ID)
  node_process.py   the VO node as a child process (``VoNodeProcess``) and where its vo.yaml lives
  stream.py         publish frames into the node, record what it publishes (rclpy; tests, bench, demos)
  recorder.py       the demo's publisher/recorder process
  fixtures.py       checkpoints with a known constant motion (tests, bench)
  demo.py           ``make demo``; its steps: demo_training.py (1-2), demo_node.py (3), demo_scoring.py (4-5);
                    settings in demo.yaml
Importing this package imports nothing else.
"""
