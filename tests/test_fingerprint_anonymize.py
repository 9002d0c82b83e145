"""``--anonymize``: no path in the fingerprint keeps the user or host name."""

from __future__ import annotations

import json
import re
import sys

import pytest

from driftboard.core.fingerprint import collect_fingerprint
from driftboard.core.fingerprint.anonymize import anonymize_paths
from driftboard.core.fingerprint.system import anonymized_names, collect_identity

pytest.importorskip("torch")


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def test_names_inside_paths_are_replaced_and_other_text_is_not() -> None:
    names = {"alice": "user-aaaaaaaaaaaa", "gpu-node-17": "host-bbbbbbbbbbbb"}
    fp = {
        "python": {"executable": "/home/alice/.venv/bin/python", "version": "3.11.7"},
        "env": {"TORCHINDUCTOR_CACHE_DIR": "/tmp/torchinductor_alice", "OMP_NUM_THREADS": "4"},
        "cpu": {"error": "OSError: /mnt/gpu-node-17/alice/cpuinfo"},
        "other": ["C:\\Users\\alice\\AppData", "/home/alicex/kept", "alice is not a path", 3],
    }
    got = anonymize_paths(fp, names)
    assert got["python"] == {"executable": "/home/user-aaaaaaaaaaaa/.venv/bin/python", "version": "3.11.7"}
    assert got["env"]["TORCHINDUCTOR_CACHE_DIR"] == "/tmp/torchinductor_user-aaaaaaaaaaaa"
    assert got["cpu"]["error"] == "OSError: /mnt/host-bbbbbbbbbbbb/user-aaaaaaaaaaaa/cpuinfo"
    assert got["other"] == ["C:\\Users\\user-aaaaaaaaaaaa\\AppData", "/home/alicex/kept", "alice is not a path", 3]


def test_the_hashes_are_the_ones_identity_records() -> None:
    names = anonymized_names(hostname=lambda: "gpu-node-17.corp", user=lambda: "alice")
    ident = collect_identity(anonymize=True, hostname=lambda: "gpu-node-17.corp", user=lambda: "alice")
    assert names == {"gpu-node-17.corp": ident["hostname"], "gpu-node-17": ident["hostname"], "alice": ident["user"]}


def test_anonymized_fingerprint_keeps_no_user_name_in_any_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from driftboard.core.fingerprint.system import _user

    user = _user()
    monkeypatch.setattr(sys, "executable", f"/home/{user}/.venv/bin/python")
    environ = {"TORCHINDUCTOR_CACHE_DIR": f"/tmp/torchinductor_{user}", "OMP_NUM_THREADS": "2"}
    named = re.compile(rf"(?<![A-Za-z0-9]){re.escape(user)}(?![A-Za-z0-9])")

    plain = collect_fingerprint(environ=environ)
    assert plain["python"]["executable"] == f"/home/{user}/.venv/bin/python"  # unchanged without --anonymize

    fp = collect_fingerprint(environ=environ, anonymize=True)
    hashed = fp["identity"]["user"]
    assert fp["python"]["executable"] == f"/home/{hashed}/.venv/bin/python"
    assert fp["env"]["TORCHINDUCTOR_CACHE_DIR"] == f"/tmp/torchinductor_{hashed}"
    leaks = [s for s in _strings(fp) if ("/" in s or "\\" in s) and named.search(s)]
    assert not leaks, leaks
    assert json.dumps(fp["torch"]["version"]) == json.dumps(plain["torch"]["version"])
