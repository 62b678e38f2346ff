"""ament_python package: `colcon build` in a ROS 2 workspace, or `pip install -e .`."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "m4sam_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["configs/*.yaml", "assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="m4sam_ros maintainers",
    maintainer_email="m4sam_ros@example.com",
    description="Prompt-free RGB-D video salient object detection (M4-SAM on SAM2) for ROS 2.",
    license="Apache-2.0",
    python_requires=">=3.10",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "m4sam_node = m4sam_ros.ros.node:main",
            "m4sam-train = m4sam_ros.train:main",
            "m4sam-eval = m4sam_ros.evaluate:main",
            "m4sam-bag = m4sam_ros.bag:main",
            "m4sam-bench = m4sam_ros.bench:main",
            "m4sam-synth = m4sam_ros.data.synth:main",
        ],
    },
)
