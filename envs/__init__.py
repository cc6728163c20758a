"""Gymnasium environments for vision-and-language navigation (installed as ``valan.envs``).

Importing this package registers ``valan/R2R-v0``, ``valan/Touchdown-v0`` and ``valan/NDH-v0`` with gymnasium:
at once when gymnasium is already imported, otherwise the moment gymnasium's registry module is imported. So code
that only needs graphs, datasets and metrics (``valan evaluate``) does not pay gymnasium's import (a third of the
evaluator's start-up), and ``import valan.envs; gymnasium.make("valan/R2R-v0")`` works either way.

``batched`` holds the contract every task's environments follow (and the bases that implement it); each task
folder (``r2r``, ``streetview``) holds its graph, data, metrics and environment, importing in that order.
"""

import sys

_ENVS = {
    "valan/R2R-v0": "valan.envs.r2r.env:R2REnv",
    "valan/Touchdown-v0": "valan.envs.streetview.env:TouchdownEnv",
    "valan/NDH-v0": "valan.envs.ndh.env:NDHEnv",
}
_REGISTRY_MODULE = "gymnasium.envs.registration"


def _register() -> None:
    from gymnasium.envs.registration import register, registry

    for env_id, entry_point in _ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)


class _RegisterWithGymnasium:
    """Finds gymnasium's registry module as the other finders do and runs :func:`_register` right after it loads.
    A meta path finder by protocol (``find_spec``), not by subclassing ``importlib.abc.MetaPathFinder``: importing
    ``importlib.abc`` costs ~8 ms, a twentieth of ``valan evaluate``."""

    def find_spec(self, name, path=None, target=None):
        if name != _REGISTRY_MODULE:
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def load_then_register(module) -> None:
            load(module)
            _register()

        spec.loader.exec_module = load_then_register
        return spec


if _REGISTRY_MODULE in sys.modules:
    _register()
elif not any(isinstance(finder, _RegisterWithGymnasium) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithGymnasium())
