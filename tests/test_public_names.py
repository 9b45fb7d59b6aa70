"""msrkit's public names come from one table (``msrkit._EXPORTS``): ``__all__``, the lazy loader and the
``TYPE_CHECKING`` re-exports agree with it. (That ``import msrkit`` stays light: ``tests/test_public_api.py``.)"""

from __future__ import annotations

import ast
from pathlib import Path

import msrkit

INIT = Path(msrkit.__file__)


def _type_checking_imports() -> dict[str, str]:
    """``name -> module`` of the imports under ``if TYPE_CHECKING:`` in ``msrkit/__init__.py``."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    blocks = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    assert len(blocks) == 1
    found: dict[str, str] = {}
    for node in blocks[0].body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            assert alias.asname in (None, alias.name), ast.unparse(node)
            assert alias.name not in found, f"{alias.name} imported twice"
            found[alias.name] = f"msrkit.{node.module}"
    return found


def test___all___is_the_table_of_exports() -> None:
    assert msrkit.__all__ == ["__version__", *msrkit._EXPORTS]
    assert len(set(msrkit.__all__)) == len(msrkit.__all__)
    assert set(dir(msrkit)) == set(msrkit.__all__)


def test_every_public_name_resolves_from_the_module_the_table_names() -> None:
    for name, module in msrkit._EXPORTS.items():
        value = getattr(msrkit, name)
        assert value is not None, name
        assert getattr(__import__(module, fromlist=[name]), name) is value, name


def test_the_type_checking_block_imports_exactly_the_public_names() -> None:
    assert _type_checking_imports() == msrkit._EXPORTS


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        msrkit.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("msrkit.NoSuchName resolved")
