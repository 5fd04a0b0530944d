"""The ROS 2 visual-odometry node: camera in; depth, odometry, TF, point cloud and diagnostics out.

    ros2 run bwdp_ros vo_node --ros-args --params-file ros/config/vo.yaml -p checkpoint:=model.pt
    bwdp-vo-node --ros-args -p checkpoint:=model.pt -r image:=/camera/image_rect -r camera_info:=/camera/camera_info

A managed (lifecycle) node: ``configure`` loads the checkpoint and warms the networks up, ``activate`` starts the
subscriptions, the camera mount and the inference thread and enables the publishers, ``deactivate`` / ``cleanup``
undo them. With ``autostart`` (default) it configures and activates itself, so a plain run works as before.

Topics (relative names, remap them):
  in   image (sensor_msgs/Image, rectified) or image/compressed (use_compressed), camera_info      [SensorDataQoS]
       /tf_static (and /tf through tf2_ros when importable): the camera mount base_frame -> camera optical frame
  out  depth/image_rect (Image 32FC1, metres x metric_scale, NaN invalid, header = the input image's),
       depth/camera_info (same header, K and P at the depth size, no distortion: depth_image_proc pairs them),
       depth/points (PointCloud2, publish_cloud), odom (nav_msgs/Odometry odom -> base_link, covariance integrated
       from the twist covariance), path (publish_path), /tf (odom -> base_link, publish_tf), /tf_static (the mount,
       only with publish_camera_tf and only for a frame nobody else parents), /diagnostics (DiagnosticArray)
  srv  ~/reset (std_srvs/Trigger): odometry back to identity; the lifecycle services (~/change_state, ~/get_state, ...)
       ~/save_model (std_srvs/Trigger): with adapt, write the adapted weights (save_model_path) as a bwdp checkpoint

Metric scale (camera_height) and online adaptation (adapt) are bwdp_core's (vo_pipeline's ground scale, train.adapt's
worker, which the pipeline takes as its weights provider); the node only passes the parameters and reports their status.

Design: the subscription callback only stores the newest frame (``LatestFrameSlot``; an overwritten frame counts as
dropped); one inference thread takes the newest frame and runs the processing path `bwdp replay` runs too: decode
(conversions -> ``bwdp_core.data.image_msgs``), pick the intrinsics (``bwdp_core.inference.intrinsics``), fit the
image to the network (``bwdp_core.inference.camera_fit``), then ``bwdp_core.inference.vo_pipeline.VisualOdometry``;
covariances come from ``bwdp_core.inference.odometry_covariance``, the cloud from ``bwdp_core.inference.point_cloud``,
the mount from ``bwdp_ros.mount``. Input that cannot be used is rejected with one throttled log line per kind; the
node keeps going. No geometry here: this file converts messages and handles parameters.
"""
from __future__ import annotations

import math
import re
import sys
import threading
import time
from typing import Any, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger

from bwdp_core.errors import BwdpError, DataError
from bwdp_core.inference.camera_fit import fit_to_network, geometry_warnings
from bwdp_core.inference.intrinsics import IntrinsicsPicker, camera_info_intrinsics, parameter_intrinsics
from bwdp_core.inference.odometry_covariance import OdometryCovariance
from bwdp_core.inference.point_cloud import depth_cloud
from bwdp_core.inference.scheduling import DepthSchedule, ScheduledOdometry
from bwdp_core.inference.settings import Number
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig
from bwdp_core.train.adapt import AdaptConfig, Adapter
from bwdp_ros import conversions as conv
from bwdp_ros.mount import CameraMount, TFMessage
from bwdp_ros.params import SPEC_BY_NAME, SPECS, adapted_model_path, check_all
from bwdp_ros.runtime import (
    LEVEL_NAMES,
    OK,
    STALE,
    STAMP_AGE_LIMIT_S,
    DiagnosticsWindow,
    LatencyWindow,
    LatestFrameSlot,
    ThrottledLog,
)

NODE_NAME = "vo_node"
DEFAULT_CAMERA_FRAME = "camera_optical_frame"
# parameters every rclpy node has, or that ROS tools add; not ours to check
_FOREIGN_PARAMETERS = ("use_sim_time", "start_type_description_service")
# VO frame fields and processing status shown on /diagnostics when the processing provides them (scale estimation,
# online adaptation): ``VisualOdometry.status()`` -> dict, or these attributes of the last VOFrame
_DIAGNOSTIC_FRAME_FIELDS = ("scale", "scale_source", "adaptation")
_OVERRIDABLE_QOS = ("history", "depth", "reliability")  # QoSOverridingOptions.with_default_policies()


def _kind_of(reason: str) -> str:
    """Throttling key of a rejection reason: its wording without the numbers (one log line per kind of problem)."""
    return re.sub(r"[0-9.]+", "#", reason)[:60]


def _category(err: DataError) -> str:
    return getattr(err, "category", None) or _kind_of(str(err))


def _data_error(message: str, category: str) -> DataError:
    err = DataError(message)
    err.category = category
    return err


class StartupError(Exception):
    """The node cannot start or configure (bad parameter, unreadable checkpoint): one error line (exit 2 on
    autostart)."""


def parameter_descriptor(spec) -> ParameterDescriptor:
    """The ROS descriptor of a parameter: description, read-only, and the numeric range of numeric parameters (an
    open end is the type's limit; an exclusive minimum is in the range as its edge, the node's check refuses it)."""
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    check = spec.check
    if not isinstance(check, Number) or isinstance(spec.default, bool):
        return descriptor
    if isinstance(spec.default, int):
        low = -2**63 if check.minimum is None else int(check.minimum)
        high = 2**63 - 1 if check.maximum is None else int(check.maximum)
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    else:
        low = -math.inf if check.minimum is None else float(check.minimum)
        high = math.inf if check.maximum is None else float(check.maximum)
        descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    descriptor.additional_constraints = check.range_text
    return descriptor


class VoNode(LifecycleNode):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.params = self._declare_parameters()
        self._warn_unknown_overrides()
        reasons = check_all(self.params)
        if reasons:
            raise StartupError("; ".join(reasons))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.reject = ThrottledLog(self.get_logger().warning, self.params["log_throttle_period"])
        self.slot = LatestFrameSlot()
        self.latency = LatencyWindow()
        self.window = DiagnosticsWindow()
        self.processed = 0
        self.vo: Optional[VisualOdometry] = None
        self.adapter: Optional[Adapter] = None  # online adaptation (adapt), created at configure
        self.scheduled: Optional[ScheduledOdometry] = None  # the VO with its depth thread, created at configure
        self._vo_lock = threading.Lock()  # the VO state, its covariance and the path: inference thread vs ~/reset
        self.mount: Optional[CameraMount] = None
        self._active = False
        self._worker: Optional[threading.Thread] = None
        self._subscriptions_active: list = []
        self._outputs: dict[str, Any] = {}
        self._camera_info: Optional[tuple[CameraInfo, tuple]] = None  # newest usable CameraInfo, its (K, size)
        self._camera_info_error: Optional[str] = None
        self._geometry_checked: set = set()
        self._last_frame = None
        self._path = Path()
        self._last_level: Optional[int] = None
        self._last_summary = time.monotonic()
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.params["diagnostics_period"], self._on_diagnostics_timer)

    # ------------------------------------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> dict[str, Any]:
        values = {}
        for spec in SPECS:
            try:
                values[spec.name] = self.declare_parameter(spec.name, spec.default, parameter_descriptor(spec)).value
            except ParameterException as err:  # a wrong type (metric_scale:=2 for a double) or out of range
                raise StartupError(f"parameter {spec.name!r}: {err} "
                                   f"(default {spec.default!r} shows the type)") from None
        return values

    def _warn_unknown_overrides(self) -> None:
        for name in sorted(self._overrides()):
            if name in SPEC_BY_NAME or name in _FOREIGN_PARAMETERS or name.startswith("qos_overrides."):
                continue
            self.get_logger().warning(f"ignoring unknown parameter {name!r} (not a parameter of {NODE_NAME}; "
                                      "see config/vo.yaml for the list)")

    def _overrides(self) -> dict:
        return getattr(self, "_parameter_overrides", {}) or {}

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in SPEC_BY_NAME}
        if not changes:
            return SetParametersResult(successful=True)
        reasons = check_all({**self.params, **changes})
        if changes.get("publish_tf") and TFMessage is None:
            reasons.append("publish_tf needs tf2_msgs, which is not importable here")
        if self._active and changes.get("base_frame", self.params["base_frame"]) != self.params["base_frame"]:
            reasons.append("base_frame cannot change while the node is active: odom -> base_frame on /tf and the "
                           "camera mount base_frame -> camera must name the same frame; deactivate the node "
                           "(lifecycle), set base_frame, activate it again")
        if reasons:
            return SetParametersResult(successful=False, reason="; ".join(reasons))
        self.params.update(changes)
        self._apply_parameters(changes)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, changes: dict) -> None:
        """Hand changed parameters to the parts that hold them (those not built yet read them when built)."""
        if self.scheduled is not None:
            self.scheduled.schedule = self._depth_schedule()
        if self.vo is not None:
            self.vo.update_config(**{k: v for k, v in vars(VOConfig.from_settings(self.params)).items()
                                     if k != "T_base_camera"})
            self.intrinsics.fallback = self._fallback_intrinsics()
            self.covariance.configure(*self._covariance_model())
        self.reject.period = self.params["log_throttle_period"]
        if "odom_frame" in changes:
            self._path.poses = []
        if "diagnostics_period" in changes:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(self.params["diagnostics_period"], self._on_diagnostics_timer)

    def _fallback_intrinsics(self):
        p = self.params
        return parameter_intrinsics(p["fx"], p["fy"], p["cx"], p["cy"])

    def _covariance_model(self) -> tuple:
        p = self.params
        return p["pose_covariance_diagonal"], p["twist_covariance_diagonal"], p["lost_covariance"]

    # ------------------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except StartupError as err:
            self.get_logger().error(f"cannot configure: {err}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return super().on_configure(state)

    def _configure(self) -> None:
        if not self.params["checkpoint"]:
            raise StartupError("parameter 'checkpoint' is empty: pass -p checkpoint:=/path/to/model.pt "
                               "(or checkpoint:=... to the launch file)")
        if TFMessage is None:
            raise StartupError("tf2_msgs is not importable: install ros-<distro>-tf2-msgs (or run `bash "
                               "scripts/build_tf2_msgs.sh .venv` for pip-installed ROS); the node reads the camera "
                               "mount from TF")
        estimator = self._load_estimator()
        try:
            self.adapter = (Adapter(self.params["checkpoint"], estimator, AdaptConfig.from_settings(self.params))
                            if self.params["adapt"] else None)
        except BwdpError as err:
            raise StartupError(str(err)) from None
        self.vo = VisualOdometry(estimator, VOConfig.from_settings(self.params), weights_provider=self.adapter)
        # PoseNet on every frame in the inference thread, DispNet on scheduled frames in a depth thread of its own
        self.scheduled = ScheduledOdometry(self.vo, self._depth_schedule(), self._publish_depth,
                                           on_error=self._on_depth_error)
        self.intrinsics = IntrinsicsPicker(self._fallback_intrinsics())
        self.covariance = OdometryCovariance(*self._covariance_model())
        self._create_publishers()
        self._check_qos_overrides()
        self._reset_service = self.create_service(Trigger, "~/reset", self._on_reset)
        self._save_service = self.create_service(Trigger, "~/save_model", self._on_save_model)

    def _load_estimator(self) -> DepthPoseEstimator:
        p = self.params
        try:
            return DepthPoseEstimator(p["checkpoint"], device=p["device"], warmup_iterations=p["warmup_iterations"],
                                      num_threads=p["num_threads"], backend=p["inference_backend"],
                                      int8_dir=p["int8_model_dir"], depth_threads=p["depth_threads"])
        except BwdpError as err:
            raise StartupError(str(err)) from None
        except Exception as err:  # e.g. a torch error while tracing the networks: still one line, no traceback
            raise StartupError(f"cannot prepare the networks of {p['checkpoint']}: {type(err).__name__}: {err}") \
                from None

    def _create_publishers(self) -> None:
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        overridable = QoSOverridingOptions.with_default_policies()
        for name, msg_type in (("depth/image_rect", Image), ("depth/camera_info", CameraInfo),
                               ("depth/points", PointCloud2), ("odom", Odometry), ("path", Path)):
            self._outputs[name] = self.create_lifecycle_publisher(msg_type, name, reliable,
                                                                  qos_overriding_options=overridable)
        self._outputs["/tf"] = self.create_lifecycle_publisher(TFMessage, "/tf", QoSProfile(depth=100))

    def _check_qos_overrides(self) -> None:
        """qos_overrides.* work for the outputs and the image / camera_info subscriptions; any other is refused."""
        known = {name for name in self._parameters if name.startswith("qos_overrides.")}
        for topic in (self._image_topic(), "camera_info"):
            known |= {f"qos_overrides.{self.resolve_topic_name(topic)}.subscription.{policy}"
                      for policy in _OVERRIDABLE_QOS}
        unknown = sorted(name for name in self._overrides() if name.startswith("qos_overrides.") and name not in known)
        if unknown:
            raise StartupError(f"unknown QoS override(s) {', '.join(unknown)}: this node's are "
                               f"{', '.join(sorted(known))}")

    def _image_topic(self) -> str:
        return "image/compressed" if self.params["use_compressed"] else "image"

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        overridable = QoSOverridingOptions.with_default_policies()
        image_type = CompressedImage if self.params["use_compressed"] else Image
        self._subscriptions_active = [
            self.create_subscription(image_type, self._image_topic(), self._on_image, qos_profile_sensor_data,
                                     qos_overriding_options=overridable),
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos_profile_sensor_data,
                                     qos_overriding_options=overridable),
        ]
        p = self.params
        self.mount = CameraMount(self, p["base_frame"], p["publish_camera_tf"], self.vo.config.T_base_camera,
                                 error=self.get_logger().error, info=self.get_logger().info)
        self._path.poses = []
        self.slot.open()
        self._worker = threading.Thread(target=self._inference_loop, name="vo_inference", daemon=True)
        self._worker.start()
        if self.adapter is not None:
            self.adapter.start()
        self._active = True
        estimator = self.vo.estimator
        self.get_logger().info(
            f"ready: checkpoint {p['checkpoint']} on {estimator.device} ({estimator.backend}), network input "
            f"{estimator.height}x{estimator.width}; listening on {self.resolve_topic_name(self._image_topic())}; "
            f"camera mount {'published from parameters' if p['publish_camera_tf'] else 'read from TF'} "
            f"({self.mount.backend})")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self.get_logger().info("deactivated: subscriptions stopped, publishers disabled")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        self._active = False
        self.slot.close()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout=5.0)
        self._worker = None
        if self.adapter is not None:
            self.adapter.stop()
        for sub in self._subscriptions_active:
            self.destroy_subscription(sub)
        self._subscriptions_active = []
        if self.mount is not None:
            self.mount.destroy()
            self.mount = None

    def _release(self) -> None:
        for pub in self._outputs.values():
            self.destroy_lifecycle_publisher(pub)
        self._outputs = {}
        for name in ("_reset_service", "_save_service"):
            if getattr(self, name, None) is not None:
                self.destroy_service(getattr(self, name))
                setattr(self, name, None)
        if self.scheduled is not None:
            self.scheduled.close()
            self.scheduled = None
        self.vo = None
        self.adapter = None
        self._camera_info = None
        self._geometry_checked = set()

    def lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]

    # ------------------------------------------------------------------------------------------------- callbacks
    def _on_image(self, msg) -> None:
        self.slot.put((msg, time.monotonic()))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            checked = camera_info_intrinsics(*conv.camera_info_numbers(msg))
        except DataError as err:
            self._camera_info_error = str(err)
            self._rejected("camera_info " + _kind_of(str(err)), f"camera_info rejected: {err}")
            return
        self._camera_info, self._camera_info_error = (msg, checked), None

    def _on_reset(self, request, response):
        vo = self.vo
        if vo is not None:
            with self._vo_lock:
                vo.reset()
                self.covariance.reset()
                self._path.poses = []
        self.get_logger().info("odometry reset on request (~/reset): the next frame starts at identity")
        response.success = True
        response.message = "odometry reset; the next frame starts at identity"
        return response

    # ------------------------------------------------------------------------------------------------- inference
    def _rejected(self, category: str, message: str) -> None:
        self.window.frame_rejected(category)
        self.reject(category, message)

    def _inference_loop(self) -> None:
        while rclpy.ok(context=self.context) and not self.slot.closed:
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            msg, received = item
            try:
                self._process(msg, received)
            except DataError as err:
                self._rejected(_category(err), f"frame skipped: {err}")
            except Exception as err:  # never let one frame kill the node
                self._rejected("internal", f"frame skipped after an unexpected {type(err).__name__}: {err}")

    def _camera_input(self, msg):
        """(rgb fitted to the network, its K, the source CameraInfo or None) of an image message; DataError."""
        rgb = conv.image_to_rgb(msg)
        info, camera = self._camera_info or (None, None)
        why = self._camera_info_error or f"no camera_info received yet on {self.resolve_topic_name('camera_info')}"
        missing = f"{why}; waiting (or set the fx, fy, cx, cy parameters)"
        K = self.intrinsics.pick(rgb.shape[:2], camera, missing)
        self._check_geometry(K, rgb.shape[:2])
        rgb, K = fit_to_network(rgb, K, self.vo.estimator.size, self.params["resize_mode"])
        return rgb, K, info

    def _check_geometry(self, K, size_hw) -> None:
        """Warn once per camera geometry that differs from the checkpoint's training geometry."""
        key = (size_hw, tuple(round(float(v), 1) for v in K.reshape(-1)), self.params["resize_mode"])
        if key in self._geometry_checked:
            return
        self._geometry_checked.add(key)
        estimator = self.vo.estimator
        reasons = geometry_warnings(K, size_hw, estimator.size, self.params["resize_mode"],
                                    self.params["geometry_tolerance"], getattr(estimator, "training_intrinsics", None))
        if reasons:
            self.get_logger().warning("this camera differs from the checkpoint's training geometry: "
                                      + "; ".join(reasons))

    def _camera_mount(self, frame_id: str):
        camera_frame = self.params["camera_frame"] or frame_id or DEFAULT_CAMERA_FRAME
        T = self.mount.resolve(camera_frame)
        if T is None:
            raise _data_error(self.mount.waiting_reason, "no_mount")
        if not (T == self.vo.config.T_base_camera).all():
            self.vo.update_config(T_base_camera=T)

    def _process(self, msg, received: float) -> None:
        rgb, K, _info = self._camera_input(msg)
        header, stamp = msg.header, msg.header.stamp
        with self._vo_lock:
            self._camera_mount(header.frame_id)
            # PoseNet now; DispNet (when scheduled) in the depth thread, which publishes with this frame's header
            frame = self.scheduled.process(rgb, K, conv.stamp_to_ns(stamp), self._depth_subscribed(),
                                           context=(header, rgb))
            pose_cov, twist_cov = self.covariance.update(frame.stamp_ns, frame.T_odom_base, frame.tracking)
            if frame.event and frame.tracking == "initialising":
                self._path.poses = []
        self._log_event(frame)
        if frame.warning:
            self.get_logger().warning(frame.warning)
        self._publish_odometry(frame, stamp, pose_cov, twist_cov)
        self._record(frame, received)

    def _log_event(self, frame) -> None:
        if frame.event:
            if frame.tracking_lost:
                self.reject("tracking_lost", frame.event)
            else:
                self.get_logger().info(frame.event)

    def _publish_depth(self, result, job) -> None:
        """Depth thread: depth image, its camera_info (and the cloud) with the header of the frame it came from."""
        header, rgb = job.context
        outputs = self._outputs
        if not outputs:  # deactivated / cleaned up while this depth frame was being computed
            return
        outputs["depth/image_rect"].publish(conv.depth_to_image(result.depth, header))
        outputs["depth/camera_info"].publish(conv.depth_camera_info(result.K_depth, result.depth.shape, header))
        if self.params["publish_cloud"]:
            cloud = depth_cloud(result.depth, result.K_depth, rgb, self.params["cloud_decimation"])
            outputs["depth/points"].publish(conv.point_cloud_msg(cloud.points, cloud.rgb, header))

    def _publish_odometry(self, frame, stamp, pose_cov, twist_cov) -> None:
        p = self.params
        odom = conv.odometry_msg(frame.T_odom_base, frame.linear_velocity, frame.angular_velocity, stamp,
                                 p["odom_frame"], p["base_frame"], pose_cov.reshape(36), twist_cov.reshape(36))
        if p["publish_tf"]:
            self._outputs["/tf"].publish(TFMessage(transforms=[
                conv.transform_stamped(frame.T_odom_base, stamp, p["odom_frame"], p["base_frame"])]))
        self._outputs["odom"].publish(odom)
        if p["publish_path"]:
            self._path.header.stamp, self._path.header.frame_id = stamp, p["odom_frame"]
            self._path.poses.append(conv.pose_stamped(frame.T_odom_base, stamp, p["odom_frame"]))
            if p["path_max_length"] and len(self._path.poses) > p["path_max_length"]:
                del self._path.poses[: len(self._path.poses) - p["path_max_length"]]
            self._outputs["path"].publish(self._path)

    def _record(self, frame, received: float) -> None:
        stamp_age = (self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e9
        self.latency.add(stamp_age)
        self.window.frame_processed(time.monotonic() - received, stamp_age, frame.tracking)
        self._last_frame = frame
        self.processed += 1

    def _depth_schedule(self) -> DepthSchedule:
        return DepthSchedule(self.params["depth_every_n"], self.params["depth_when_subscribed"])

    def _depth_subscribed(self) -> bool:
        return any(self._outputs[name].get_subscription_count() > 0
                   for name in ("depth/image_rect", "depth/camera_info", "depth/points") if name in self._outputs)

    def _on_depth_error(self, err: BaseException) -> None:
        self._rejected("depth", f"depth frame skipped after an unexpected {type(err).__name__}: {err}")

    # ------------------------------------------------------------------------------------------------- diagnostics
    def _status_fields(self) -> dict:
        """Extra /diagnostics values: lifecycle, mount, runtime, and what the processing says about itself."""
        fields = {"lifecycle state": self.lifecycle_state()}
        if self.mount is not None:
            fields["camera mount"] = self.mount.source
        if self.vo is not None:
            fields["runtime"] = f"{self.vo.estimator.backend} on {self.vo.estimator.device}"
            fields["frames since reset"] = self.vo.frames_since_reset
            status = getattr(self.vo, "status", None)
            if callable(status):
                fields.update(status())
            scale = self.vo.scale_status
            if scale is not None:
                fields["metric scale"] = f"{scale.scale:.4f}"
                fields["metric scale spread"] = f"{scale.spread:.3f}"
                fields["frames since the last ground fit"] = scale.frames_since_good
        if self.adapter is not None and self.adapter.status is not None:
            adapt, buffer = self.adapter.status, self.adapter.buffer
            fields["adaptation"] = (f"{adapt.steps} steps, {adapt.swaps} swaps, {adapt.rollbacks} roll-backs, "
                                    f"loss {adapt.mean_loss:.4f}, buffer {len(buffer.frames)} (kept {buffer.kept} "
                                    f"of {buffer.seen}){', ' + adapt.paused if adapt.paused else ''}")
        for name in _DIAGNOSTIC_FRAME_FIELDS:
            value = getattr(self._last_frame, name, None)
            if value is not None:
                fields[name] = value
        return fields

    def _on_diagnostics_timer(self) -> None:
        inactive = None if self._active else f"inactive (lifecycle state: {self.lifecycle_state()})"
        report = self.window.report(self.slot.received, self.slot.dropped, inactive, self._status_fields())
        self.pub_diagnostics.publish(conv.diagnostic_array(
            f"{self.get_fully_qualified_name()}: visual odometry", "", report.level,
            report.message, report.values, self.get_clock().now().to_msg()))
        self._log_report(report)

    def _log_report(self, report) -> None:
        """A line when the level changes; while frames flow, a summary line every log_summary_period s."""
        if report.level != self._last_level:
            line = f"status {LEVEL_NAMES[report.level]}: {report.message}"
            if report.level in (OK, STALE):  # two call sites: an rclpy log call keeps one severity
                self.get_logger().info(line)
            else:
                self.get_logger().warning(line)
            self._last_level = report.level
        period = self.params["log_summary_period"]
        if period > 0 and time.monotonic() - self._last_summary >= period:
            count, p50, p95 = self.latency.report()
            self._last_summary = time.monotonic()
            if count:
                latency = (f"latency p50 {p50 * 1e3:.0f} ms p95 {p95 * 1e3:.0f} ms over {count}"
                           if abs(p50) <= STAMP_AGE_LIMIT_S else
                           f"stamp latency n/a: image stamps {p50:.3g} s off this clock (recorded stamps?)")
                fields = self._status_fields()
                extra = "".join(f"; {name} {fields[name]}" for name in ("metric scale", "adaptation") if name in fields)
                self.get_logger().info(
                    f"diagnostics: processed {self.processed}, received {self.slot.received}, dropped "
                    f"{self.slot.dropped} (newer frame arrived), rejected {self.reject.total}; {latency}{extra}")

    # ------------------------------------------------------------------------------------------------- adaptation
    def _save_adapted(self) -> str:
        """Write the adapted weights to save_model_path (atomic); returns the path (BwdpError/OSError on failure)."""
        return self.adapter.save(adapted_model_path(self.params))

    def _on_save_model(self, request, response):
        if self.adapter is None:
            response.success, response.message = False, "adapt is off: the weights are the checkpoint's"
            return response
        try:
            path = self._save_adapted()
        except (BwdpError, OSError) as err:
            response.success, response.message = False, f"cannot save the adapted model: {err}"
            self.get_logger().error(response.message)
            return response
        response.success, response.message = True, path
        self.get_logger().info(f"adapted model saved to {path} (~/save_model)")
        return response

    def close(self) -> None:
        self._stop_processing()
        if self.adapter is not None and self.params["save_on_shutdown"]:
            try:
                self.get_logger().info(f"adapted model saved to {self._save_adapted()} (save_on_shutdown)")
            except (BwdpError, OSError) as err:
                self.get_logger().error(f"cannot save the adapted model on shutdown: {err}")
        if self.scheduled is not None:
            self.scheduled.close()


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point (`bwdp-vo-node`, `ros2 run bwdp_ros vo_node`): exit 0 on Ctrl-C, 2 when it cannot start
    (with autostart: also when configure or activate fails)."""
    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
        try:
            node = VoNode()
            if node.params["autostart"]:
                for transition in (node.trigger_configure, node.trigger_activate):
                    if transition() != TransitionCallbackReturn.SUCCESS:
                        return 2
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
