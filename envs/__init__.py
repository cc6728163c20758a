"""Gymnasium environments for vision-and-language navigation (installed as ``valan.envs``).

Importing this package registers ``valan/R2R-v0`` and ``valan/Touchdown-v0`` with gymnasium.

``batched`` holds the contract every task's environments follow (and the bases that implement it); each task
folder (``r2r``, ``streetview``) holds its graph, data, metrics and environment, importing in that order.
"""

from gymnasium.envs.registration import register, registry

_ENVS = {
    "valan/R2R-v0": "valan.envs.r2r.env:R2REnv",
    "valan/Touchdown-v0": "valan.envs.streetview.env:TouchdownEnv",
    "valan/NDH-v0": "valan.envs.ndh.env:NDHEnv",
}

for _env_id, _entry_point in _ENVS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point)
