"""Drive the VO node from Python: start it as a process, stream frames into it, record what it publishes.

Used by the tests, the benchmark and demos; DDS stays on this machine (localhost discovery, own domain id).

    from bwdp_ros.stream import VoNodeProcess, VoStreamClient, pick_domain_id
    domain = pick_domain_id("demo")
    with VoNodeProcess("model.pt", domain_id=domain, params={"device": "cpu"}) as node, \\
            VoStreamClient(domain) as client:
        node.wait_ready()
        client.wait_for_node()
        stamps = client.stream(images, K, rate_hz=10.0)      # uint8 RGB frames, 3x3 K at the image size
        client.wait_for(lambda: len(client.odom) >= len(stamps), timeout=30)
        client.write_tum("odom.tum")                         # base_link in odom, keyed by image stamps
    print(node.output)                                       # the node's log

Command line (streams a KITTI-layout sequence or an image folder and records the odometry):

    python -m bwdp_ros.stream --kitti-seq synth/sequences/00 --checkpoint model.pt --rate 10 --out stream_out
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCALHOST_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1"}


def pick_domain_id(salt: str = "") -> int:
    """A ROS_DOMAIN_ID in 101..198 from this process id and ``salt`` (different salts -> usually different ids)."""
    value = os.getpid() * 31 + sum(ord(c) * (i + 1) for i, c in enumerate(salt))
    return 101 + value % 98


def ros_env(domain_id: int, base: Optional[dict] = None) -> dict:
    """Environment for a ROS process kept on this machine, in ``domain_id``."""
    env = dict(os.environ if base is None else base)
    env.update(LOCALHOST_ENV)
    env["ROS_DOMAIN_ID"] = str(int(domain_id))
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _param_arg(name: str, value) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "[" + ",".join(_param_text(v) for v in value) + "]"
    else:
        text = _param_text(value)
    return f"{name}:={text}"


def _param_text(value) -> str:
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


def _exit_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies (Linux), so a killed test run leaves no node behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class VoNodeProcess:
    """The VO node in its own process (``python -m bwdp_ros.vo_node``); always stopped on exit of the ``with``.

    The node also gets SIGTERM if the thread that started it dies (PR_SET_PDEATHSIG): start it from a long-lived
    thread (the main one).
    """

    def __init__(self, checkpoint, domain_id: int, params: Optional[dict] = None, params_file=None,
                 remaps: Optional[dict] = None, log_path=None, python: str = sys.executable):
        self.args = [python, "-m", "bwdp_ros.vo_node", "--ros-args"]
        if params_file is not None:
            self.args += ["--params-file", str(params_file)]
        if checkpoint is not None:
            self.args += ["-p", _param_arg("checkpoint", str(checkpoint))]
        for name, value in (params or {}).items():
            self.args += ["-p", _param_arg(name, value)]
        for src, dst in (remaps or {}).items():
            self.args += ["-r", f"{src}:={dst}"]
        self.env = ros_env(domain_id)
        # run from this checkout even when the package is not pip-installed
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [self.env.get("PYTHONPATH")] if p])
        self._tmp = None
        if log_path is None:
            self._tmp = tempfile.NamedTemporaryFile(prefix="bwdp_vo_node_", suffix=".log", delete=False)
            log_path = self._tmp.name
        self.log_path = Path(log_path)
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "VoNodeProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_exit_with_parent)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the node logs 'ready:'; RuntimeError with its log when it exits or times out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "]: ready:" in self.output:
                return
            if not self.alive():
                raise RuntimeError(f"vo_node exited with {self.proc.returncode}:\n{self.output}")
            time.sleep(0.1)
        raise RuntimeError(f"vo_node not ready after {timeout} s:\n{self.output}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGINT (clean shutdown), then SIGKILL after ``timeout`` s. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> "VoNodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.close()


# ------------------------------------------------------------------------------------------------------ messages
def make_image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical_frame"):
    """uint8 RGB [H,W,3] -> sensor_msgs/Image rgb8."""
    from sensor_msgs.msg import Image
    from bwdp_ros.conversions import ns_to_stamp

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    msg = Image()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, int(rgb.shape[1]) * 3
    msg.data = rgb.tobytes()
    return msg


def make_camera_info_msg(K, height: int, width: int, stamp_ns: int, frame_id: str = "camera_optical_frame"):
    from sensor_msgs.msg import CameraInfo
    from bwdp_ros.conversions import ns_to_stamp

    K = np.asarray(K, dtype=np.float64)
    info = CameraInfo()
    info.header.stamp = ns_to_stamp(stamp_ns)
    info.header.frame_id = frame_id
    info.height, info.width = int(height), int(width)
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [float(x) for x in K.reshape(9)]
    info.r = [float(x) for x in np.eye(3).reshape(9)]
    P = np.zeros((3, 4))
    P[:, :3] = K
    info.p = [float(x) for x in P.reshape(12)]
    return info


def depth_from_msg(msg) -> np.ndarray:
    """32FC1 sensor_msgs/Image -> float32 [H,W] (NaN where the node marks depth invalid)."""
    dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 4]
    return np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width).astype(np.float32)


class VoStreamClient:
    """Publisher of Image + CameraInfo and recorder of the node's outputs, in its own rclpy context and thread.

    Recorded lists hold (receive time ns (time.time_ns), message): depth, depth_info, odom, tf, tf_static, path.
    """

    def __init__(self, domain_id: int, namespace: str = "", image_topic: str = "image",
                 camera_info_topic: str = "camera_info", node_name: str = "vo_node", compressed: bool = False):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from nav_msgs.msg import Odometry, Path as PathMsg
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        for key, value in LOCALHOST_ENV.items():
            os.environ.setdefault(key, value)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.node = rclpy.create_node(f"bwdp_stream_client_{os.getpid()}", namespace=namespace or None,
                                      context=self.context)
        self.target = node_name if not namespace else f"{namespace.rstrip('/')}/{node_name}"
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = self.node.create_publisher(CompressedImage if compressed else Image,
                                                    image_topic + ("/compressed" if compressed else ""), reliable)
        self.pub_info = self.node.create_publisher(CameraInfo, camera_info_topic, reliable)
        self.depth, self.depth_info, self.odom, self.tf, self.tf_static, self.path = [], [], [], [], [], []
        self._lock = threading.Lock()

        def recorder(store):
            def callback(msg):
                with self._lock:
                    store.append((time.time_ns(), msg))
            return callback

        self.node.create_subscription(Image, "depth", recorder(self.depth), reliable)
        self.node.create_subscription(CameraInfo, "depth/camera_info", recorder(self.depth_info), reliable)
        self.node.create_subscription(Odometry, "odom", recorder(self.odom), reliable)
        self.node.create_subscription(PathMsg, "path", recorder(self.path), reliable)
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            TFMessage = None
        if TFMessage is not None:
            self.node.create_subscription(TFMessage, "/tf", recorder(self.tf), QoSProfile(depth=100))
            static = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                reliability=ReliabilityPolicy.RELIABLE)
            self.node.create_subscription(TFMessage, "/tf_static", recorder(self.tf_static), static)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()

    def _spin_loop(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, Exception):
            pass

    # ------------------------------------------------------------------------------------------------ publishing
    def publish(self, msg) -> None:
        """Publish a raw Image / CompressedImage (also hostile ones) on the image topic."""
        self.pub_image.publish(msg)

    def publish_camera_info(self, msg) -> None:
        self.pub_info.publish(msg)

    def publish_frame(self, rgb: np.ndarray, stamp_ns: int, K=None, frame_id: str = "camera_optical_frame") -> None:
        """CameraInfo (when K is given) then the rgb8 Image, both stamped ``stamp_ns``."""
        if K is not None:
            self.pub_info.publish(make_camera_info_msg(K, rgb.shape[0], rgb.shape[1], stamp_ns, frame_id))
        self.pub_image.publish(make_image_msg(rgb, stamp_ns, frame_id))

    def stream(self, images: Iterable[np.ndarray], K, rate_hz: float, start_ns: Optional[int] = None,
               frame_id: str = "camera_optical_frame") -> list[int]:
        """Publish frames at ``rate_hz`` (wall clock); stamps = start_ns (default: now) + i / rate. Returns the stamps."""
        period = 1.0 / float(rate_hz)
        t0 = time.monotonic()
        start_ns = time.time_ns() if start_ns is None else int(start_ns)
        stamps = []
        for i, rgb in enumerate(images):
            delay = t0 + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp = start_ns + int(round(i * period * 1e9))
            self.publish_frame(rgb, stamp, K, frame_id)
            stamps.append(stamp)
        return stamps

    # ------------------------------------------------------------------------------------------------ waiting
    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(interval)
        with self._lock:
            return bool(predicate())

    def wait_for_node(self, timeout: float = 30.0) -> bool:
        """Until the node's image subscription is matched with our publisher (discovery done)."""
        return self.wait_for(lambda: self.pub_image.get_subscription_count() > 0
                             and self.pub_info.get_subscription_count() > 0, timeout)

    def prime(self, rgb: np.ndarray, K, next_stamp: Callable[[], int], timeout: float = 60.0,
              frame_id: str = "camera_optical_frame", interval: float = 1.0) -> bool:
        """Publish a frame every ``interval`` s until the node answers with odometry (True) or ``timeout`` passes.

        Discovery is not symmetric: our publisher can see the node's subscription before the node accepts our
        samples, so the very first frames may be lost; call this once before counting on delivery.
        """
        deadline = time.monotonic() + timeout
        start = len(self.odom)
        while time.monotonic() < deadline:
            self.publish_frame(rgb, next_stamp(), K, frame_id)
            if self.wait_for(lambda: len(self.odom) > start, min(interval, max(0.0, deadline - time.monotonic()))):
                return True
        return False

    def odom_for_stamp(self, stamp_ns: int):
        from bwdp_ros.conversions import stamp_to_ns

        with self._lock:
            for _, msg in self.odom:
                if stamp_to_ns(msg.header.stamp) == stamp_ns:
                    return msg
        return None

    def clear(self) -> None:
        with self._lock:
            for store in (self.depth, self.depth_info, self.odom, self.tf, self.path):
                store.clear()

    # ------------------------------------------------------------------------------------------------ services
    def _call(self, srv_type, name: str, request, timeout: float):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available after {timeout} s")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service {name} did not answer in {timeout} s")
                time.sleep(0.01)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def reset(self, timeout: float = 10.0):
        """Call the node's ~/reset (std_srvs/Trigger); returns the response."""
        from std_srvs.srv import Trigger

        return self._call(Trigger, f"/{self.target.lstrip('/')}/reset", Trigger.Request(), timeout)

    def set_parameters(self, values: dict, timeout: float = 10.0) -> list:
        """Set node parameters through its set_parameters service; returns the SetParametersResult list."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request()
        request.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        return self._call(SetParameters, f"/{self.target.lstrip('/')}/set_parameters", request, timeout).results

    # ------------------------------------------------------------------------------------------------ output
    def write_tum(self, path) -> Path:
        """The recorded odometry (base_link in odom) as a TUM file: stamp tx ty tz qx qy qz qw."""
        from bwdp_ros.conversions import stamp_to_ns

        path = Path(path)
        with self._lock:
            rows = []
            for _, msg in self.odom:
                p, q = msg.pose.pose.position, msg.pose.pose.orientation
                rows.append(f"{stamp_to_ns(msg.header.stamp) / 1e9:.9f} {p.x:.9f} {p.y:.9f} {p.z:.9f} "
                            f"{q.x:.9f} {q.y:.9f} {q.z:.9f} {q.w:.9f}")
        path.write_text("\n".join(rows) + ("\n" if rows else ""))
        return path

    def write_depths(self, folder) -> int:
        """Every recorded depth image as ``folder/<stamp ns>.npy`` (float32 metres, NaN invalid). Returns the count."""
        from bwdp_ros.conversions import stamp_to_ns

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            msgs = [m for _, m in self.depth]
        for msg in msgs:
            np.save(folder / f"{stamp_to_ns(msg.header.stamp)}.npy", depth_from_msg(msg))
        return len(msgs)

    def close(self) -> None:
        try:
            self.executor.shutdown(timeout_sec=1.0)
        except Exception:
            pass
        self.node.destroy_node()
        self.context.try_shutdown()
        self._spin.join(timeout=2.0)

    def __enter__(self) -> "VoStreamClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------------ command line
def _load_sequence(args) -> tuple[list[np.ndarray], np.ndarray]:
    import cv2

    if args.kitti_seq:
        from bwdp_core.bags.make_bag import load_kitti_sequence

        images, K, _poses = load_kitti_sequence(args.kitti_seq)
        return images, K
    folder = Path(args.images)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for p in files]
    if args.intrinsics is None:
        raise SystemExit("--images needs --intrinsics fx fy cx cy")
    fx, fy, cx, cy = args.intrinsics
    return images, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bwdp_ros.stream", description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--kitti-seq", help="KITTI odometry sequence folder (image_2/, calib.txt)")
    src.add_argument("--images", help="folder of PNG/JPEG frames (with --intrinsics)")
    parser.add_argument("--intrinsics", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"))
    parser.add_argument("--checkpoint", help="start a VO node with this checkpoint (else: use a running node)")
    parser.add_argument("--params-file", help="node parameters file (e.g. config/vo.yaml)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or a free one)")
    parser.add_argument("--out", required=True, help="folder for odom.tum, node.log, summary.json")
    parser.add_argument("--save-depth", action="store_true", help="also write every depth image as depth/<stamp>.npy")
    args = parser.parse_args(argv)

    images, K = _load_sequence(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    domain = args.domain_id if args.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID", pick_domain_id()))
    node = None
    if args.checkpoint:
        node = VoNodeProcess(args.checkpoint, domain, params={"device": args.device}, params_file=args.params_file,
                             log_path=out / "node.log").start()
    try:
        if node is not None:
            node.wait_ready()
        with VoStreamClient(domain) as client:
            if not client.wait_for_node(30.0):
                print("no VO node subscribed to 'image' within 30 s", file=sys.stderr)
                return 1
            # make sure the node takes our samples before the real stream starts, then restart its odometry
            if not client.prime(images[0], K, time.time_ns, timeout=30.0):
                print("the VO node did not answer a probe frame within 30 s", file=sys.stderr)
                return 1
            client.reset()
            client.clear()
            stamps = client.stream(images, K, args.rate)
            client.wait_for(lambda: len(client.odom) >= len(stamps), timeout=10.0)
            client.write_tum(out / "odom.tum")
            if args.save_depth:
                client.write_depths(out / "depth")
            summary = {"frames_sent": len(stamps), "odometry_received": len(client.odom),
                       "depth_received": len(client.depth), "rate_hz": args.rate}
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary))
        return 0
    finally:
        if node is not None:
            node.stop()


if __name__ == "__main__":
    sys.exit(main())
