"""What a backend class declares, so that the registry needs nothing else of it.

A backend is one class (in ``msrkit/backends/NAME.py``, ``NAME`` listed in
:data:`~msrkit.backends.registry.KINDS`) that sets, beside the :class:`~.base.Backend`
interface:

- ``name``: the kind, the ``KIND`` of ``KIND/MODEL`` (and of its identity, so of cache keys);
- ``options_model``: the pydantic model its ``backend_options`` are checked against (:mod:`.options`);
- ``package`` and ``extra``: the module it needs and the msrkit extra that installs it
  (``""``: a core dependency);
- ``loads_adapters``: whether it loads a fine-tuned LoRA itself (else :meth:`adapter_hint` says how to serve one);

and defines :meth:`from_spec` (how ``get_backend`` builds it from ``KIND/MODEL``); it may
extend :meth:`status` (the line ``msrkit backends`` prints).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from .options import NoOptions

if TYPE_CHECKING:
    from ..training.adapter import Adapter

__all__ = ["BackendKind"]


class BackendKind:
    """The declarations a backend class makes for the registry (see the module docstring)."""

    name: str
    options_model: ClassVar[type[BaseModel]] = NoOptions
    package: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    loads_adapters: ClassVar[bool] = False

    @classmethod
    def from_spec(
        cls, model: str, *, base_url: str | None, api_key: str | None, adapter: Adapter | None, **options: Any
    ) -> BackendKind:
        """The backend for ``KIND/MODEL``: ``options`` are checked, and ``adapter`` is ``None`` unless it loads them."""
        raise NotImplementedError

    @classmethod
    def installed(cls) -> bool:
        return not cls.package or importlib.util.find_spec(cls.package) is not None

    @classmethod
    def status(cls, env: Mapping[str, str]) -> str:
        """What is installed and reachable, for ``msrkit backends``."""
        return "installed" if cls.installed() else f"missing: pip install 'msrkit[{cls.extra}]'"

    @classmethod
    def adapter_hint(cls, model: str, adapter: Adapter) -> str:
        """Why this backend takes no ``adapter=``, and how its server would serve one."""
        return f"the {cls.name} backend does not load adapters"
