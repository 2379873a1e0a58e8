"""The node agent: runs on every node, probes it, and measures workloads.

Its core (this package's top-level modules) is stdlib only so that `probe` works on a bare
Python; engines import numpy / mlx / coremltools lazily. It never imports the controller.
"""

AGENT_VERSION = "0.1.0"
