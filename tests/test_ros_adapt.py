"""The VO node with adapt:=true and camera_height over real DDS (localhost only): it keeps publishing odometry while its
worker trains, logs the scale and adaptation status, and ~/save_model writes a checkpoint `bwdp vo` loads."""
import re
import time
from pathlib import Path

import pytest
import torch

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable (pip install -r requirements-ros.txt)")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not importable (bash scripts/build_tf2_msgs.sh .venv)")

from bwdp_core.checkpoint import build_models, load_checkpoint, make_checkpoint, save_checkpoint  # noqa: E402
from bwdp_core.commands import cli  # noqa: E402
from bwdp_core.synth.render import render_sequence  # noqa: E402
from bwdp_ros.conversions import stamp_to_ns  # noqa: E402
from bwdp_tools.node_process import VoNodeProcess  # noqa: E402
from bwdp_tools.processes import pick_domain_id  # noqa: E402
from bwdp_tools.stream import VoStreamClient  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
PERIOD_NS = 100_000_000


def test_node_keeps_publishing_while_adapting_and_saves_the_model(tmp_path, capsys):
    torch.manual_seed(0)
    disp_net, pose_net = build_models({"num_layers": 18})
    ckpt = tmp_path / "start.pt"
    save_checkpoint(ckpt, make_checkpoint(disp_net, pose_net, 32, 96))
    street = render_sequence(10, 64, 192, seed=4)
    saved = tmp_path / "adapted.pt"
    params = {"device": "cpu", "warmup_iterations": 0, "num_threads": 1, "inference_backend": "eager",
              "adapt": True, "adapt_steps_per_swap": 2, "adapt_min_parallax": 0.0, "adapt_share": 1.0,
              "camera_height": 1.6,
              "save_model_path": str(saved), "diagnostics_period": 1.0, "log_summary_period": 1.0}
    domain = pick_domain_id("test_ros_adapt")
    node = VoNodeProcess(ckpt, domain, params=params, params_file=ROOT / "ros" / "config" / "vo.yaml",
                         log_path=tmp_path / "node.log")
    client = None
    try:
        node.start()
        client = VoStreamClient(domain)
        node.wait_ready(timeout=120)
        assert client.wait_for_node(30), "node's subscriptions not discovered"
        stamp = [1_700_000_000 * 10**9]

        def next_stamp():
            stamp[0] += PERIOD_NS
            return stamp[0]

        assert client.prime(street.images[0], street.K, next_stamp, timeout=60), node.output
        answered, sent_count, deadline = 0, 0, time.monotonic() + 240
        swaps = []
        while time.monotonic() < deadline:  # lock-step frames (the street back and forth) until a swap happened
            lap, sweep = divmod(sent_count, len(street.images))
            image = street.images[sweep if lap % 2 == 0 else len(street.images) - 1 - sweep]
            sent = next_stamp()
            client.publish_frame(image, sent, street.K)
            sent_count += 1
            answered += client.wait_for(lambda s=sent: any(stamp_to_ns(m.header.stamp) == s for _, m in client.odom),
                                        30)
            swaps = [int(n) for _, n in re.findall(r"adaptation (\d+) steps, (\d+) swaps", node.output)]
            if swaps and swaps[-1] >= 1 and sent_count >= 12:
                break
        assert answered == sent_count, f"odometry missing while adapting:\n{node.output[-3000:]}"
        assert swaps and swaps[-1] >= 1, node.output[-3000:]
        assert "metric scale " in node.output
        response = client.save_model()
        assert response.success, response.message
        assert response.message == str(saved)
        assert load_checkpoint(saved)["adaptation"]["steps"] >= 2
    finally:
        if client is not None:
            client.close()
        node.stop()
    assert cli.main(["synth", "--out", str(tmp_path / "s"), "--frames", "3", "--height", "32", "--width", "96"]) == 0
    code = cli.main(["vo", "--checkpoint", str(saved), "--kitti-seq", str(tmp_path / "s" / "sequences" / "00"),
                     "--device", "cpu", "--out", str(tmp_path / "t.txt")])
    assert code == 0, capsys.readouterr().err
