"""ament_python package: `colcon build` in a ROS 2 workspace (built as ros.ament_python because of
package.xml's <build_type>), or `pip install -e .` in a development venv.

colcon puts the console scripts into lib/m4sam_ros (setup.cfg), where `ros2 run m4sam_ros <tool>`
finds them; their interpreter is the one that ran colcon, so run `python -m colcon build` from the
venv that has torch (README, "ROS 2 workspace").
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "m4sam_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["configs/*.yaml", "recipes/*.yaml", "assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    install_requires=["setuptools"],
    # `colcon test` / `pip install .[test]`; tests_require is ignored by setuptools >= 72.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="m4sam_ros maintainers",
    maintainer_email="m4sam_ros@example.com",
    description="Prompt-free RGB-D video salient object detection (M4-SAM on SAM2) for ROS 2.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "m4sam_node = m4sam_ros.ros.node:main",
            "m4sam_wait_active = m4sam_ros.ros.wait_active:main",
            "m4sam-train = m4sam_ros.training.train:main",
            "m4sam-eval = m4sam_ros.evaluation.evaluate:main",
            "m4sam-eval-epochs = m4sam_ros.evaluation.epochs:main",
            "m4sam-bag = m4sam_ros.apps.bag:main",
            "m4sam-bench = m4sam_ros.benchmarks.bench:main",
            "m4sam-gpu-run = m4sam_ros.apps.gpu_run:main",
            "m4sam-synth = m4sam_ros.data.synth.world:main",
            "m4sam-heldout = m4sam_ros.evaluation.heldout:main",
            "m4sam-delivery-bench = m4sam_ros.benchmarks.delivery_bench:main",
            "m4sam-soak = m4sam_ros.benchmarks.soak_bench:main",
            "m4sam-export = m4sam_ros.export.onnx_export:main",
            "m4sam-demo-bench = m4sam_ros.benchmarks.demo_bench:main",
        ],
    },
)
