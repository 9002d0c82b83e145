"""Environment diff: kinds of change, numerics first in registry order, informational after."""

from __future__ import annotations

from runs_factory import DELETE, fingerprint

from driftboard.core import fields
from driftboard.core.compare import diff_environments


def test_identical_fingerprints() -> None:
    diff = diff_environments(fingerprint(), fingerprint())
    assert diff.changes == () and diff.identical


def test_kinds_and_values() -> None:
    new = fingerprint(**{"torch.version": "2.6.0", "env.CUBLAS_WORKSPACE_CONFIG": ":4096:8", "torch.blas": DELETE})
    diff = diff_environments(fingerprint(), new)
    by_key = {c.key: c for c in diff.changes}
    assert by_key["torch.version"].kind == "changed"
    assert (by_key["torch.version"].baseline, by_key["torch.version"].candidate) == ("2.5.1+cpu", "2.6.0")
    assert by_key["env.CUBLAS_WORKSPACE_CONFIG"].kind == "added"
    assert by_key["torch.blas"].kind == "removed" and by_key["torch.blas"].candidate is None
    assert by_key["torch.version"].text == "torch 2.5.1+cpu → 2.6.0"
    assert by_key["torch.blas"].text == "BLAS: removed (was mkl)"
    assert diff.get("torch.version") is by_key["torch.version"] and diff.get("nope") is None


def test_numerics_first_in_registry_order_then_informational() -> None:
    new = fingerprint(
        **{
            "identity.hostname": "box-b",
            "python.executable": "/opt/py/bin/python",
            "numerics.intra_op_threads": 1,
            "numerics.mkldnn_enabled": False,
            "cpu.isa.avx512f": False,
            "torch.version": "2.6.0",
            "extra.unregistered": 1,
            "cpu.cores": 4,
        }
    )
    diff = diff_environments(fingerprint(), new)
    keys = [c.key for c in diff.changes]
    assert keys[:4] == ["torch.version", "cpu.isa.avx512f", "numerics.intra_op_threads", "numerics.mkldnn_enabled"]
    assert [c.key for c in diff.numerics] == keys[:4]
    informational = keys[4:]
    assert set(informational) == {"identity.hostname", "python.executable", "extra.unregistered", "cpu.cores"}
    assert [fields.rank(k) for k in informational] == sorted(fields.rank(k) for k in informational)
    assert informational[-1] == "extra.unregistered"  # unregistered keys last
    assert not diff.identical
    assert all(not c.numerics for c in diff.informational)


def test_identity_only_changes_keep_the_environment_numerically_identical() -> None:
    diff = diff_environments(fingerprint(), fingerprint(**{"identity.hostname": "x", "identity.label": "new"}))
    assert diff.identical and len(diff.informational) == 2


def test_type_changes_count_and_list_indices_sort_naturally() -> None:
    old = fingerprint(**{"gpu.devices": [{"name": f"A{i}"} for i in range(12)], "numerics.intra_op_threads": 1})
    new = fingerprint(**{"gpu.devices": [{"name": f"H{i}"} for i in range(12)], "numerics.intra_op_threads": True})
    diff = diff_environments(old, new)
    names = [c.key for c in diff.changes if c.key.startswith("gpu.devices")]
    assert names == [f"gpu.devices[{i}].name" for i in range(12)]
    assert diff.get("numerics.intra_op_threads") is not None  # 1 vs True differ


def test_to_json() -> None:
    payload = diff_environments(fingerprint(), fingerprint(**{"torch.version": "2.6.0"})).to_json()
    assert payload["numerics_identical"] is False
    assert payload["changes"][0] == {
        "key": "torch.version",
        "kind": "changed",
        "baseline": "2.5.1+cpu",
        "candidate": "2.6.0",
        "numerics": True,
        "label": "torch",
        "text": "torch 2.5.1+cpu → 2.6.0",
    }


def test_values_are_shown_as_people_write_them() -> None:
    from driftboard.core.compare.envdiff import EnvChange, shown_pair

    def pair(key, old, new, kind="changed"):
        return shown_pair(EnvChange(key, kind, old, new, True, key))

    assert pair("numerics.deterministic_algorithms", False, True) == ("no", "yes")
    assert pair("gpu.driver", None, "550.54.15") == ("–", "550.54.15")
    assert pair("gpu.cudnn", 90100, 91002) == ("9.1.0", "9.10.2")
    assert pair("gpu.cudnn", 8902, 90100) == ("8.9.2", "9.1.0")
    assert pair("env.CUDA_VISIBLE_DEVICES", None, "0,1", kind="added") == ("–", "0,1")
    assert pair("cpu.flags", ["avx", "avx2"], ["avx"]) == ("avx, avx2", "avx")


def test_long_values_show_what_differs_not_a_shared_prefix() -> None:
    from driftboard.core.compare.envdiff import EnvChange, shown_pair

    head = "PyTorch built with:\n  - GCC 9.3\n  - C++ Version: 201703\n  - Intel(R) oneAPI Math Kernel Library\n"
    old, new = shown_pair(EnvChange("torch.config", "changed", head + "  - USE_MKLDNN=ON\n  - LAPACK is enabled",
                                    head + "  - USE_MKLDNN=OFF\n  - LAPACK is enabled", True, "build"))
    assert old == "… - USE_MKLDNN=ON …" and new == "… - USE_MKLDNN=OFF …"
    flags = [f"flag{i}" for i in range(40)]
    old, new = shown_pair(EnvChange("cpu.flags", "changed", [*flags, "avx512f"], flags, True, "flags"))
    assert (old, new) == ("… avx512f …", "(absent)")


def test_the_cli_separates_informational_changes(tmp_path) -> None:
    from click.testing import CliRunner
    from runs_factory import default_suite, make_run

    from driftboard.cli import cli
    from driftboard.core.bundle import write_bundle
    from driftboard.core.run import MemoryArrays

    paths = []
    for name, overrides in (("a", {}), ("b", {"identity.hostname": "box-b", "numerics.mkldnn_enabled": False})):
        arrays = MemoryArrays()
        paths.append(write_bundle(tmp_path / f"{name}.driftboard", make_run(default_suite(arrays), run_id=name,
                                                                              fingerprint_overrides=overrides), arrays))
    out = CliRunner().invoke(cli, ["compare", *map(str, paths), "--fail-on", "never"]).output
    numerics = out.index("Environment: 1 change(s), can change numbers")
    informational = out.index("Environment: 1 change(s), informational, cannot change numbers")
    assert numerics < out.index("numerics.mkldnn_enabled") < informational < out.index("identity.hostname")
    assert "yes" in out[numerics:informational] and "True" not in out[numerics:informational]
