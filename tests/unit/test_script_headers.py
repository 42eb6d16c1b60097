"""Every script's header agrees with the result codes defined in Python and
with what its body can answer, and documents its keys."""

import pytest

from engine import scripts
from engine.codes import Code


@pytest.mark.parametrize("name", [n for n in scripts.NAMES if n not in scripts.CODELESS])
def test_header_lists_exactly_the_codes_the_script_answers(name):
    declared = scripts.header_codes(name)
    assert declared, f"{name}.lua has no Returns section"
    known = {c.value for c in Code}
    assert declared <= known, f"{name}.lua names unknown codes {declared - known}"
    assert scripts.used_codes(name) <= declared, (
        f"{name}.lua can answer {scripts.used_codes(name) - declared} without documenting it")


@pytest.mark.parametrize("name", scripts.NAMES)
def test_header_documents_keys_argv_writes_and_invariant(name):
    text = scripts.body(name)
    for section in ("KEYS[1]", "ARGV", "-- Returns", "-- Writes", "-- Invariant kept"):
        assert section in text, f"{name}.lua header lacks {section}"


@pytest.mark.parametrize("name", scripts.NAMES)
def test_scripts_build_keys_only_from_the_merchant_prefix(name):
    """Every key a script names starts with P (KEYS[1]) so all stay in one slot."""
    import re

    source = scripts.body(name) + scripts.body("lib")
    for call in re.findall(r"redis\.call\('([A-Z]+)',\s*([^,)]+)", source):
        command, first_arg = call
        if command in ("TIME", "PUBLISH"):  # a channel is not a key (no slot)
            continue
        assert first_arg.strip().startswith(("P ..", "P", "key", "wkey", "rkey", "wd", "ww", "ikey")), (
            name, command, first_arg)


def test_library_registers_every_operation_without_allow_oom_except_removals():
    """Functions without allow-oom are refused over maxmemory before they run."""
    source = scripts.library()
    assert source.startswith(f"#!lua name=onhand_{scripts.version()}\n")
    for name in scripts.NAMES:
        flags = "{'allow-oom'}" if name in scripts.ALLOW_OOM else "{}"
        assert f"function_name = 'onhand_{scripts.version()}_{name}', flags = {flags}" in source
    assert scripts.ALLOW_OOM == {"mark_synced"}
