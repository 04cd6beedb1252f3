"""attnlab: self-attention experiments across modalities on one shared backbone."""

from attnlab.errors import AttnlabError, ConfigError, DataError
from attnlab.types import Encoded, Tokens

__all__ = ["AttnlabError", "ConfigError", "DataError", "Encoded", "Tokens"]
__version__ = "0.1.0"
