"""OAuth 2.0 bearer tokens: who is calling, and which tasks they may see.

Importing this package costs nothing: PyJWT is imported only by
:mod:`tes_core.auth.tokens`, when authentication is on (``TES_AUTH_ENABLED``).
"""

from .principal import Owner, Principal

__all__ = ["Owner", "Principal"]
