"""The media forwarding benchmark (``harness.py``)."""
