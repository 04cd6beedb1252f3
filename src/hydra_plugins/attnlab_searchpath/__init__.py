"""Hydra discovers attnlab's search-path plugin here (namespace package ``hydra_plugins``)."""

from attnlab.config import AttnlabSearchPath

__all__ = ["AttnlabSearchPath"]
