"""The fan-out's C extension (`signaling/_sendmany.c`, used by `signaling/sendmany.py`); everything
else about the package is in pyproject.toml. Optional: without a C compiler the server still runs,
writing through asyncio (`tests/test_sendmany.py` fails, so a missing build is seen)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("signaling._sendmany", ["signaling/_sendmany.c"], optional=True)])
