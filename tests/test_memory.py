"""daemon/memory.py: the malloc arena cap the daemon sets at start-up."""
from __future__ import annotations

import os
import subprocess
import sys

CODE = "from streamad.daemon.memory import limit_malloc_arenas; print(limit_malloc_arenas())"


def _run(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_arena_cap_is_set_unless_the_environment_sets_one():
    assert _run({}) == "True"  # glibc accepted mallopt(M_ARENA_MAX, 2)
    assert _run({"MALLOC_ARENA_MAX": "4"}) == "False"  # the operator's setting wins
