"""``import valan.envs`` registers the environments with gymnasium whether gymnasium was imported before or after."""

from __future__ import annotations

import subprocess
import sys

import pytest

@pytest.mark.parametrize("order", ["valan first", "gymnasium first"])
def test_environments_are_registered_in_either_import_order(order):
    if order == "valan first":
        code = ("import valan.envs\nassert 'gymnasium' not in sys.modules, 'valan.envs imported gymnasium'\n"
                "import gymnasium\nenv = gymnasium.make('valan/R2R-v0')\n")
    else:
        code = "import gymnasium\nimport valan.envs\nenv = gymnasium.make('valan/R2R-v0')\n"
    code = "import sys\n" + code + (
        "env.reset(seed=0)\nimport gymnasium.envs.registration as r\n"
        "print(sorted(k for k in r.registry if k.startswith('valan/')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "['valan/NDH-v0', 'valan/R2R-v0', 'valan/Touchdown-v0']"
