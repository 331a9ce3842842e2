"""Presets as data: the built-in ones, `extends`, and third-party presets that
arrive through the `nitro_build.presets` entry point group."""

from __future__ import annotations

import ast
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import tree_hash

from nitro_build.build import build_project
from nitro_build.build import presets as presets_module
from nitro_build.build.emitters.base import python_literal
from nitro_build.build.presets import (
    PresetError,
    known_presets,
    load_emitter_class,
    load_preset,
    package_data_dir,
)

PLUGIN = """
from pathlib import Path

from nitro_build.build.emitters.server import Emitter as ServerEmitter

HERE = Path(__file__).parent

PRESET = {
    "extends": "node-server",
    "description": "A server with a banner",
    "emitter": "acme_preset:Emitter",
    "templates": "acme_templates",
    "extra": {"greeting": "hello"},
    "files": [{"template": "acme/banner.txt.j2", "output": "banner.txt"}],
}

LOOPING = {"extends": "acme-loop", "emitter": "server"}

BROKEN = {"extends": "node-server", "emitter": "acme_preset:Failing"}


class Emitter(ServerEmitter):
    def emit(self):
        super().emit()
        self.write_json("acme.json", {"tasks": [t.name for t in self.plan.tasks]})


class Failing(ServerEmitter):
    def emit(self):
        super().emit()
        raise RuntimeError("the disk is full")


def toml_path():
    return HERE / "acme_toml.toml"
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution that registers presets by entry point."""
    folder = tmp_path / "site"
    (folder / "acme_templates" / "acme").mkdir(parents=True)
    (folder / "acme_preset.py").write_text(PLUGIN)
    (folder / "acme_templates" / "acme" / "banner.txt.j2").write_text(
        "{{ extra.greeting }} from {{ preset.name }}: "
        "{{ tasks | map(attribute='name') | join(', ') }}\n"
    )
    (folder / "acme_toml.toml").write_text(
        'extends = "bun"\ndescription = "From a TOML file"\n'
    )
    info = folder / "acme_preset-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-preset\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [nitro_build.presets]
            acme = acme_preset:PRESET
            acme-toml = acme_preset:toml_path
            acme-loop = acme_preset:LOOPING
            acme-broken = acme_preset:BROKEN
            """
        )
    )
    monkeypatch.syspath_prepend(str(folder))
    presets_module._entry_points.cache_clear()
    yield folder
    presets_module._entry_points.cache_clear()


def test_the_server_presets_are_known_and_bases_are_not() -> None:
    known = known_presets()

    assert {"node-server", "bun", "deno-server"} <= set(known)
    assert not [name for name in known if name.startswith("_")]


def test_a_server_preset_inherits_its_base() -> None:
    preset = load_preset("deno-server")

    assert preset.name == "deno-server"
    assert preset.dialect == "server"
    assert preset.emitter == "server"
    assert preset.bundle.folder == "server"
    assert preset.bundle.packages == "_vendor"
    assert "uvicorn" in preset.bundle.dependencies
    assert [f.output for f in preset.files] == ["server/index.py"]
    assert preset.template_dirs[-1] == package_data_dir("templates")
    assert preset.preview["command"] == "python server/index.py"


def test_every_built_in_preset_loads_with_its_emitter() -> None:
    for name in known_presets():
        preset = load_preset(name)
        assert load_emitter_class(preset).__name__ == "Emitter" or ":" in preset.emitter


def test_an_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(PresetError) as caught:
        load_preset("deno-sever")

    message = caught.value.message
    assert message.startswith(
        "preset 'deno-sever' is not known; did you mean 'deno-server'?"
    )
    assert "known presets: " in message
    assert "node-server" in message


def test_a_preset_name_cannot_be_a_path() -> None:
    with pytest.raises(PresetError, match="is not a valid name"):
        load_preset("../pyproject")


def test_a_third_party_preset_extends_and_adds_files(
    plugin: Path, copy_fixture
) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")

    assert "acme" in known_presets()
    build_project(root, preset="acme")

    output = root / ".output"
    banner = (output / "banner.txt").read_text()
    assert banner == "hello from acme: cms:update, db:migrate, echo:payload\n"
    assert json.loads((output / "acme.json").read_text())["tasks"][0] == "cms:update"
    assert (output / "server" / "index.py").is_file()
    assert json.loads((output / "nitro.json").read_text())["preset"] == "acme"


def test_a_third_party_preset_can_be_a_toml_file(plugin: Path) -> None:
    preset = load_preset("acme-toml")

    assert preset.description == "From a TOML file"
    assert preset.bundle.folder == "server"


def test_an_extends_loop_is_an_error(plugin: Path) -> None:
    with pytest.raises(PresetError, match="extends itself: acme-loop -> acme-loop"):
        load_preset("acme-loop")


def test_an_emitter_failing_midway_leaves_the_previous_output(  # type: ignore[no-untyped-def]
    plugin: Path, copy_fixture
) -> None:
    root = copy_fixture("example")
    build_project(root)
    before = tree_hash(root / ".output")

    with pytest.raises(RuntimeError, match="the disk is full"):
        build_project(root, preset="acme-broken")

    assert tree_hash(root / ".output") == before
    assert sorted(p.name for p in root.iterdir()) == [
        ".nitro",
        ".output",
        "nitro.config.toml",
        "tasks",
    ]


def test_invalid_preset_data_names_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {"emitter": 3, "dialect": "aws", "colour": "red", "bundle": {"foldr": "x"}}

    with pytest.raises(PresetError) as caught:
        presets_module._build("odd", data, [])

    message = caught.value.message
    assert "unknown key 'colour'" in message
    assert "dialect 'aws' is not one of 'server', 'cloudflare', 'vercel'" in message
    assert "'emitter' must name an emitter module" in message
    assert "unknown key 'bundle.foldr'" in message


def test_an_embedded_manifest_reads_back_as_the_same_data() -> None:
    tasks = [
        {"name": f"group:task{n}", "file": None, "handler": "m:f", "description": "'"}
        for n in range(50)
    ]
    manifest = {"preset": "vercel", "tasks": tasks, "crons": {}, "app": None}

    text = python_literal(manifest)

    assert ast.literal_eval(text) == manifest
    assert max(len(line) for line in text.splitlines()) <= 88
