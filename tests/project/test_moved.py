"""Old module paths keep importing, with a DeprecationWarning, to the same objects."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from rechash._moved import MOVED, MOVED_NAMES


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_path_warns_and_points_at_existing_modules(old):
    for target in MOVED[old]:
        importlib.import_module(target)  # every target exists
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.") + " moved to"):
        importlib.import_module(old)


def test_old_names_are_the_new_objects():
    import rechash
    from rechash.hasher.twin_tower import TwinTowerHasher
    from rechash.models.code import CodeRecommender

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from rechash.baselines import fit_als
        from rechash.model import TwinTowerHasher as old_hasher
        from rechash.model.itq import ITQ
        from rechash.recommend import CodeRecommender as old_recommender

    assert old_hasher is TwinTowerHasher is rechash.TwinTowerHasher
    assert old_recommender is CodeRecommender
    assert fit_als is rechash.fit_als and ITQ is rechash.ITQ


def test_an_unknown_name_of_an_old_path_is_an_attribute_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("rechash.recommend")
    with pytest.raises(AttributeError, match="moved to rechash.models.code"):
        old.NoSuchThing


@pytest.mark.parametrize(("package", "name"), [(p, n) for p, names in MOVED_NAMES.items() for n in names])
def test_moved_names_of_kept_packages_warn(package, name):
    module = importlib.import_module(package)
    with pytest.warns(DeprecationWarning, match="moved to"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(MOVED_NAMES[package][name]), name)
