"""Packaging for roaming: layer-3 roaming for Wi-Fi clients across IP subnets."""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="roaming",
    version="0.1.0.dev0",
    description=(
        "Keep Wi-Fi clients' IP addresses and sessions while they roam between "
        "access points in different IP subnets"
    ),
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    # "twisted.plugins" is listed explicitly so that twistd finds our plugins;
    # there is deliberately no __init__.py under twisted/.
    packages=[*find_packages(include=["roaming", "roaming.*"]), "twisted.plugins"],
    package_data={"twisted": ["plugins/roaming_plugins.py"]},
    install_requires=[
        "Twisted[tls]>=24.3",
        "pyOpenSSL>=24.0",
        "service-identity>=24.1",
        "cryptography>=42",
        "attrs>=23.1",
        "pyroute2>=0.7.12",
        "prometheus-client>=0.20",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis>=6.100",
            "scapy>=2.5",
            "dpkt>=1.9.8",
            "ruff>=0.5",
        ],
        "plot": ["matplotlib>=3.8"],
    },
    entry_points={
        "console_scripts": [
            "roaming-pki = roaming.control.pki:main",
            "roamctl = roaming.roamctl:main",
            "roaming-lab = roaming.lab.cli:main",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Networking",
    ],
)
