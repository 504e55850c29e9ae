"""tes-aks: a tes-core compute backend that runs each TES task on Kubernetes.

A coordinator Job per task attempt creates the task's volume and runs the staging,
executor and upload Jobs; the server reads every task's state with one list call per
resource kind. See README.md.
"""

__version__ = "0.1.0"
