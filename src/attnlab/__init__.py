"""attnlab: self-attention experiments across modalities on one shared backbone.

``Tokens`` and ``Encoded`` load with torch on first use, so that commands which never
touch a tensor (``attnlab modality=nope``, ``attnlab-plugins new``) start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attnlab.errors import AttnlabError, ConfigError, DataError

if TYPE_CHECKING:
    from attnlab.types import Encoded, Tokens

__all__ = ["AttnlabError", "ConfigError", "DataError", "Encoded", "Tokens"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Encoded", "Tokens"):
        from attnlab import types

        return getattr(types, name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
