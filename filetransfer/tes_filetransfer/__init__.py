"""tes-filetransfer: stage GA4GH TES inputs and upload TES outputs, routed by URL scheme.

Public API::

    from tes_filetransfer import stage_inputs, upload_outputs, TransferError, register_storage
    from tes_filetransfer import Interrupted, interruptible   # stopping transfers on request
"""

from __future__ import annotations

from .config import TransferConfig
from .errors import TransferError, TransientError
from .interrupt import Interrupted, interruptible
from .outputs import upload_outputs
from .policy import AccessDenied, AccessPolicy
from .staging import stage_inputs
from .stats import TransferStats
from .storage import Storage, register_storage
from .urls import redact_url

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "AccessPolicy",
    "Interrupted",
    "Storage",
    "TransferConfig",
    "TransferError",
    "TransferStats",
    "TransientError",
    "__version__",
    "interruptible",
    "redact_url",
    "register_storage",
    "stage_inputs",
    "upload_outputs",
]
