"""Start the bwdp visual-odometry node next to a camera driver (or `ros2 bag play --clock`).

    ros2 launch bwdp_ros vo.launch.py checkpoint:=/path/model.pt image:=/camera/image_rect \
        camera_info:=/camera/camera_info
    ros2 bag play my_bag --clock &  ros2 launch bwdp_ros vo.launch.py checkpoint:=... use_sim_time:=true

Arguments: params_file (default: the installed config/vo.yaml), checkpoint, device (auto|cuda|cpu), image,
camera_info (topics remapped onto the node's `image`, `image/compressed` and `camera_info`), use_sim_time, namespace.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("bwdp_ros"), "config", "vo.yaml")
    params_file = LaunchConfiguration("params_file")
    image = LaunchConfiguration("image")
    use_sim_time = LaunchConfiguration("use_sim_time")

    arguments = [
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
        DeclareLaunchArgument("checkpoint", description="bwdp checkpoint (.pt) with DispNet + PoseNet"),
        DeclareLaunchArgument("device", default_value="auto", description="inference device: auto, cuda or cpu"),
        DeclareLaunchArgument("image", default_value="/camera/image_rect",
                              description="input image topic (rectified: the network assumes a pinhole camera)"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info", description="input CameraInfo topic"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (true with `ros2 bag play --clock`)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
    ]
    node = Node(
        package="bwdp_ros",
        executable="vo_node",
        name="vo_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            params_file,
            {
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "use_sim_time": ParameterValue(use_sim_time, value_type=bool),
            },
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
    )
    return LaunchDescription(arguments + [node])
