"""The names the packages promise in `__all__` are there, and are what they say."""

import importlib
import types

import pytest

PACKAGES = ["bindsearch", "bindsearch.media", "bindsearch.models", "bindsearch.evaluation", "bindsearch.training",
            "bindsearch.world", "indexes"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_all_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"


def test_top_level_functions_are_not_shadowed_by_submodules() -> None:
    # Importing a submodule binds its name on the package: a function exported under the same name (as
    # `bindsearch.classify` once was, beside the module `bindsearch/classify.py`) turns into that module.
    for name in ("bindsearch.labels", "bindsearch.collection", "bindsearch.models", "cli.main", "cli.collections"):
        importlib.import_module(name)
    import bindsearch
    from bindsearch import classify, load_model

    assert callable(classify) and callable(load_model)
    modules = [name for name in bindsearch.__all__ if isinstance(getattr(bindsearch, name), types.ModuleType)]
    assert modules == ["media"]
