"""The one thing pyproject.toml cannot say: ship the top-level notebooks/ and parameters/ inside
the package, as tenancy_diag/_shipped/, without a second copy in the repository.

Mapping them as packages makes setuptools copy them into the wheel (and the sdist) at build
time; an editable install keeps reading the folders themselves. tenancy_diag.resources finds
either. Which files go is `package-data` in pyproject.toml.
"""

from setuptools import find_packages, setup

SHIPPED = {
    "tenancy_diag._shipped.notebooks": "notebooks",
    "tenancy_diag._shipped.parameters": "parameters",
}

setup(packages=[*find_packages(include=["tenancy_diag*"]), *SHIPPED], package_dir=SHIPPED)
