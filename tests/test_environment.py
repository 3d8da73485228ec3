"""The control plane's environment, decided: PATH cleaning and the names recorded for doctor."""

from __future__ import annotations

import os
from pathlib import Path

from fracta import environment


def test_clean_path_keeps_existing_absolute_folders_once_and_drops_the_rest(tmp_path: Path) -> None:
    bin_a, bin_b = tmp_path / "a", tmp_path / "b"
    bin_a.mkdir()
    bin_b.mkdir()
    session = tmp_path / ".codex" / "tmp" / "arg0" / "codex-arg0Xy12Zq"  # Codex's, gone when it exits
    session.mkdir(parents=True)
    linux_session = tmp_path / ".codex" / "tmp" / "arg0-linux" / "codex-arg0Qq9"
    linux_session.mkdir(parents=True)
    missing = tmp_path / "missing"
    parts = [str(bin_a), "", ".", "bin", str(session), str(missing), str(bin_b), str(bin_a), str(linux_session)]
    cleaned = environment.clean_path(os.pathsep.join(parts))
    assert cleaned.value == os.pathsep.join([str(bin_a), str(bin_b)])
    assert cleaned.dropped == [".", "bin", str(session), str(missing), str(linux_session)]
    assert environment.clean_path(None) == environment.CleanPath("", [])


def test_the_control_plane_gets_no_fracta_identity_and_records_names_never_values(tmp_path: Path) -> None:
    env = {"PATH": f"{tmp_path}{os.pathsep}{tmp_path / 'gone'}", "FRACTA_TOKEN": "t0k", "OPENAI_API_KEY": "sk-x"}
    started = environment.for_control_plane(env)
    assert started == {"PATH": str(tmp_path), "OPENAI_API_KEY": "sk-x"}
    record = environment.summary(started)
    assert record == {"path": [str(tmp_path)], "names": ["OPENAI_API_KEY", "PATH"]}
    assert "sk-x" not in repr(record)
    found = environment.from_record({"environment": record}, 42)
    assert found is not None and found.of_control_plane and found.source == "the control plane's (pid 42)"
    assert environment.from_record({}, 42) is None  # a control plane from before this record existed


def test_every_runtimes_provider_variables_are_known_and_the_hint_names_both_ways_to_provide_them() -> None:
    known = environment.known_names()
    for runtime in ("claude", "codex", "opencode"):
        assert set(environment.provider_names(runtime)) <= set(known)
    assert known == sorted(set(known))
    hint = environment.missing_hint(["MY_KEY"])
    assert "export MY_KEY=..." in hint and 'env_vars = ["MY_KEY"]' in hint and "fracta down" in hint
