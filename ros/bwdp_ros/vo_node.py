"""The ROS 2 visual-odometry node: camera in; depth, odometry and TF out.

    ros2 run bwdp_ros vo_node --ros-args --params-file ros/config/vo.yaml -p checkpoint:=model.pt
    bwdp-vo-node --ros-args -p checkpoint:=model.pt -r image:=/camera/image_raw -r camera_info:=/camera/camera_info

Topics (relative names, remap them):
  in   image (sensor_msgs/Image) or image/compressed (CompressedImage, use_compressed), camera_info   [SensorDataQoS]
  out  depth (Image 32FC1, metres, NaN invalid, header = the input image's), depth/camera_info (same header, K at the
       depth size), odom (nav_msgs/Odometry odom -> base_link), path (nav_msgs/Path, publish_path),
       /tf (odom -> base_link, publish_tf), /tf_static (base_link -> camera optical frame, publish_camera_tf)
  srv  ~/reset (std_srvs/Trigger): odometry back to identity

Design: the subscription callback only stores the newest frame (``LatestFrameSlot``; an overwritten frame counts as
dropped); one inference thread takes the newest frame and runs the processing path `bwdp replay` runs too: decode
(conversions -> ``bwdp_core.data.image_msgs``), pick the intrinsics (``bwdp_core.inference.intrinsics``), then
``bwdp_core.inference.vo_pipeline.VisualOdometry``; then it publishes. Input that cannot be used is rejected with one
throttled log line per kind; the node keeps going. No geometry here: this file converts messages and handles
parameters.
"""
from __future__ import annotations

import re
import sys
import threading
import time
from typing import Any, Optional

import rclpy
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from bwdp_core.errors import BwdpError, DataError
from bwdp_core.inference.intrinsics import IntrinsicsPicker, camera_info_intrinsics, parameter_intrinsics
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig
from bwdp_ros import conversions as conv
from bwdp_ros.params import SPEC_BY_NAME, SPECS, check_all, covariance_matrix
from bwdp_ros.runtime import LatencyWindow, LatestFrameSlot, ThrottledLog

NODE_NAME = "vo_node"
DEFAULT_CAMERA_FRAME = "camera_optical_frame"
# parameters every rclpy node has, or that ROS tools add; not ours to check
_FOREIGN_PARAMETERS = ("use_sim_time", "start_type_description_service")

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - only where tf2_msgs was not generated (see scripts/build_tf2_msgs.sh)
    TFMessage = None


def _kind_of(reason: str) -> str:
    """Throttling key of a rejection reason: its wording without the numbers (one log line per kind of problem)."""
    return re.sub(r"[0-9.]+", "#", reason)[:60]


class StartupError(Exception):
    """The node cannot start (bad parameter, unreadable checkpoint): logged in one line, exit status 2."""


class VoNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.params = self._declare_parameters()
        self._warn_unknown_overrides()
        reasons = check_all(self.params)
        if reasons:
            raise StartupError("; ".join(reasons))
        if not self.params["checkpoint"]:
            raise StartupError("parameter 'checkpoint' is empty: pass -p checkpoint:=/path/to/model.pt "
                               "(or checkpoint:=... to the launch file)")
        if TFMessage is None and (self.params["publish_tf"] or self.params["publish_camera_tf"]):
            raise StartupError("tf2_msgs is not importable: run `bash scripts/build_tf2_msgs.sh .venv` (pip-installed "
                               "ROS) or install ros-<distro>-tf2-msgs, or set publish_tf:=false "
                               "publish_camera_tf:=false")

        try:
            estimator = DepthPoseEstimator(self.params["checkpoint"], device=self.params["device"],
                                           warmup_iterations=self.params["warmup_iterations"],
                                           num_threads=self.params["num_threads"],
                                           backend=self.params["inference_backend"])
        except BwdpError as err:
            raise StartupError(str(err)) from None
        except Exception as err:  # e.g. a torch error while tracing the networks: still one line, no traceback
            raise StartupError(f"cannot prepare the networks of {self.params['checkpoint']}: "
                               f"{type(err).__name__}: {err}") from None
        self.vo = VisualOdometry(estimator, VOConfig.from_settings(self.params))
        self._vo_lock = threading.Lock()
        self.intrinsics = IntrinsicsPicker(self._fallback_intrinsics())
        self._covariances = self._covariance_fields()

        self.reject = ThrottledLog(self.get_logger().warning, self.params["log_throttle_period"])
        self.slot = LatestFrameSlot()
        self.latency = LatencyWindow()
        self.processed = 0
        # the newest usable CameraInfo with its checked (K, size): one tuple, swapped atomically between threads
        self._camera_info: Optional[tuple[CameraInfo, tuple]] = None
        self._camera_info_error: Optional[str] = None
        self._camera_frame: Optional[str] = self.params["camera_frame"] or None
        self._camera_tf_sent = False
        self._path = Path()

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        self.pub_depth = self.create_publisher(Image, "depth", reliable)
        self.pub_depth_info = self.create_publisher(CameraInfo, "depth/camera_info", reliable)
        self.pub_odom = self.create_publisher(Odometry, "odom", reliable)
        self.pub_path = self.create_publisher(Path, "path", reliable)
        if TFMessage is not None:
            self.pub_tf = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
            static_qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                    reliability=ReliabilityPolicy.RELIABLE)
            self.pub_tf_static = self.create_publisher(TFMessage, "/tf_static", static_qos)

        if self.params["use_compressed"]:
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, qos_profile_sensor_data)
        else:
            self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._diag_timer = self.create_timer(self.params["diagnostics_period"], self._log_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._no_camera_info = f"no camera_info received yet on {self.resolve_topic_name('camera_info')}"
        if self._camera_frame:
            self._send_camera_tf()

        self._worker = threading.Thread(target=self._inference_loop, name="vo_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: checkpoint {self.params['checkpoint']} on {estimator.device} ({estimator.backend}), network input "
            f"{estimator.height}x{estimator.width}; listening on {self.resolve_topic_name('image')}"
            f"{'/compressed' if self.params['use_compressed'] else ''}")

    # ------------------------------------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> dict[str, Any]:
        values = {}
        for spec in SPECS:
            descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
            try:
                values[spec.name] = self.declare_parameter(spec.name, spec.default, descriptor).value
            except ParameterException as err:  # e.g. metric_scale:=2 (an integer) for a double parameter
                raise StartupError(f"parameter {spec.name!r}: {err} "
                                   f"(default {spec.default!r} shows the type)") from None
        return values

    def _covariance_fields(self) -> dict[bool, tuple[list[float], list[float]]]:
        """{tracking lost: (pose, twist) covariance fields}, built when the parameters change, not per frame."""
        p = self.params
        lost = covariance_matrix([p["lost_covariance"]] * 6)
        return {False: (covariance_matrix(p["pose_covariance_diagonal"]),
                        covariance_matrix(p["twist_covariance_diagonal"])),
                True: (lost, lost)}

    def _fallback_intrinsics(self):
        p = self.params
        return parameter_intrinsics(p["fx"], p["fy"], p["cx"], p["cy"])

    def _warn_unknown_overrides(self) -> None:
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        for name in sorted(overrides):
            if name in SPEC_BY_NAME or name in _FOREIGN_PARAMETERS or name.startswith("qos_overrides."):
                continue
            self.get_logger().warning(f"ignoring unknown parameter {name!r} (not a parameter of {NODE_NAME}; "
                                      "see config/vo.yaml for the list)")

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in SPEC_BY_NAME}
        if not changes:
            return SetParametersResult(successful=True)
        reasons = check_all({**self.params, **changes})
        if changes.get("publish_tf") and TFMessage is None:
            reasons.append("publish_tf needs tf2_msgs, which is not importable here")
        if reasons:
            return SetParametersResult(successful=False, reason="; ".join(reasons))
        self.params.update(changes)
        with self._vo_lock:
            self.vo.update_config(**{k: v for k, v in vars(VOConfig.from_settings(self.params)).items()
                                     if k != "T_base_camera"})
        self.intrinsics.fallback = self._fallback_intrinsics()
        self._covariances = self._covariance_fields()
        self.reject.period = self.params["log_throttle_period"]
        if "diagnostics_period" in changes:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(self.params["diagnostics_period"], self._log_diagnostics)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------------------- callbacks
    def _on_image(self, msg) -> None:
        self.slot.put((msg, time.monotonic()))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            checked = camera_info_intrinsics(*conv.camera_info_numbers(msg))
        except DataError as err:
            self._camera_info_error = str(err)
            self.reject("camera_info " + _kind_of(str(err)), f"camera_info rejected: {err}")
            return
        self._camera_info, self._camera_info_error = (msg, checked), None

    def _on_reset(self, request, response):
        with self._vo_lock:
            self.vo.reset()
            self._path.poses = []
        self.get_logger().info("odometry reset on request (~/reset): the next frame starts at identity")
        response.success = True
        response.message = "odometry reset; the next frame starts at identity"
        return response

    # ------------------------------------------------------------------------------------------------- inference
    def _inference_loop(self) -> None:
        while rclpy.ok(context=self.context) and not self.slot.closed:
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            msg, _received = item
            try:
                self._process(msg)
            except DataError as err:
                self.reject(getattr(err, "category", None) or _kind_of(str(err)), f"frame skipped: {err}")
            except Exception as err:  # never let one frame kill the node
                self.reject("internal", f"frame skipped after an unexpected {type(err).__name__}: {err}")

    def _process(self, msg) -> None:
        rgb = conv.image_to_rgb(msg)
        info, camera = self._camera_info or (None, None)
        missing = f"{self._camera_info_error or self._no_camera_info}; waiting (or set the fx, fy, cx, cy parameters)"
        K = self.intrinsics.pick(rgb.shape[:2], camera, missing)
        with self._vo_lock:
            frame = self.vo.process(rgb, K, conv.stamp_to_ns(msg.header.stamp))
            if frame.event and frame.tracking == "initialising":
                self._path.poses = []
        if frame.warning:
            self.get_logger().warning(frame.warning)
        if frame.event:
            if frame.tracking_lost:
                self.reject("tracking_lost", frame.event)
            else:
                self.get_logger().info(frame.event)
        header, stamp = msg.header, msg.header.stamp
        if not self._camera_tf_sent:
            self._camera_frame = self._camera_frame or header.frame_id or DEFAULT_CAMERA_FRAME
            self._send_camera_tf()

        self.pub_depth.publish(conv.depth_to_image(frame.depth, header))
        self.pub_depth_info.publish(conv.depth_camera_info(frame.K_depth, frame.depth.shape, header, info))
        p = self.params
        pose_cov, twist_cov = self._covariances[frame.tracking_lost]
        odom = conv.odometry_msg(frame.T_odom_base, frame.linear_velocity, frame.angular_velocity, stamp,
                                 p["odom_frame"], p["base_frame"], pose_cov, twist_cov)
        if p["publish_tf"]:
            self.pub_tf.publish(TFMessage(transforms=[
                conv.transform_stamped(frame.T_odom_base, stamp, p["odom_frame"], p["base_frame"])]))
        self.pub_odom.publish(odom)
        self.latency.add((self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e9)
        self.processed += 1
        if p["publish_path"]:
            self._path.header.stamp, self._path.header.frame_id = stamp, p["odom_frame"]
            self._path.poses.append(conv.pose_stamped(frame.T_odom_base, stamp, p["odom_frame"]))
            if p["path_max_length"] and len(self._path.poses) > p["path_max_length"]:
                del self._path.poses[: len(self._path.poses) - p["path_max_length"]]
            self.pub_path.publish(self._path)

    def _send_camera_tf(self) -> None:
        if not self.params["publish_camera_tf"] or TFMessage is None:
            self._camera_tf_sent = True
            return
        mount = self.vo.config.T_base_camera
        tf = conv.transform_stamped(mount, self.get_clock().now().to_msg(), self.params["base_frame"],
                                    self._camera_frame)
        self.pub_tf_static.publish(TFMessage(transforms=[tf]))
        self._camera_tf_sent = True
        self.get_logger().info(f"camera mount {self.params['base_frame']} -> {self._camera_frame} on /tf_static: "
                               f"xyz {list(self.params['camera_xyz'])} rpy {list(self.params['camera_rpy'])}")

    def _log_diagnostics(self) -> None:
        count, p50, p95 = self.latency.report()
        latency = f"latency p50 {p50 * 1e3:.0f} ms p95 {p95 * 1e3:.0f} ms over {count}" if count else "no frames"
        self.get_logger().info(
            f"diagnostics: processed {self.processed}, received {self.slot.received}, dropped {self.slot.dropped} "
            f"(newer frame arrived), rejected {self.reject.total}; {latency}")

    def close(self) -> None:
        self.slot.close()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point (`bwdp-vo-node`, `ros2 run bwdp_ros vo_node`): exit 0 on Ctrl-C, 2 when it cannot start."""
    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
        try:
            node = VoNode()
        except StartupError as err:
            rclpy.logging.get_logger(NODE_NAME).error(f"cannot start: {err}")
            return 2
        except KeyboardInterrupt:  # Ctrl-C while loading / warming up
            return 0
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        return 0
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
