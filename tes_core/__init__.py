"""tes-core: a GA4GH Task Execution Service (TES 1.1) server built as a small core plus plugins."""

from importlib.metadata import PackageNotFoundError, version

from .hookspecs import hookimpl

__all__ = ["API_PREFIX", "TES_API_VERSION", "__version__", "hookimpl"]

try:
    __version__ = version("tes-core")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

TES_API_VERSION = "1.1.0"
API_PREFIX = "/ga4gh/tes/v1"
