"""tes-batch: a tes-core compute backend that runs each TES task attempt as one Azure Batch
task running ``tes-runner`` in a shared, autoscaled pool.

See README.md for the settings and the design.
"""

__version__ = "0.1.0"
