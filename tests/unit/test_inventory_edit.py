"""Editing an inventory file in place: a save keeps every other key, inherited fields stay
inherited, and the loader's own errors (naming the real file and the field) guard the save."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fleet_tui.config.inventory import InventoryError, load_inventory
from fleet_tui.config.inventory_edit import (
    field_text,
    field_value,
    node_tables,
    read_document,
    save,
    validate,
    with_nodes,
)

INVENTORY = """\
# the lab's Macs
[defaults]
user = "bench"
python = "/Users/bench/.venvs/fleet/bin/python3"
tags = ["lab"]

[[node]]
name = "m1-a"
host = "m1-a.example.internal"
tier = "M1"
hourly_usd = 0.5
purchase_usd = 700

[[node]]
name = "m2-pro"
host = "10.0.0.7"
port = 2222
user = "ops"
proxy_jump = "jump@bastion"
tags = ["rented", "fast"]

[[node]]
name = "local"
transport = "local"
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(INVENTORY)
    return path


def test_saving_unchanged_round_trips_every_key(inventory: Path) -> None:
    before_data = tomllib.loads(inventory.read_text())
    before_nodes = load_inventory(inventory)
    document = read_document(inventory)
    save(with_nodes(document, node_tables(document)), inventory)
    assert tomllib.loads(inventory.read_text()) == before_data
    assert load_inventory(inventory) == before_nodes


def test_editing_one_node_keeps_defaults_and_the_other_nodes(inventory: Path) -> None:
    document = read_document(inventory)
    tables = node_tables(document)
    tables[0]["tier"] = "M1 Max"
    del tables[2]
    tables.append({"name": "m4", "host": "m4.example.internal"})
    nodes = save(with_nodes(document, tables), inventory)
    after = tomllib.loads(inventory.read_text())
    assert after["defaults"] == tomllib.loads(INVENTORY)["defaults"]
    assert after["node"][1] == tomllib.loads(INVENTORY)["node"][1]
    assert "user" not in after["node"][0]  # still inherited, not baked in
    assert [n.name for n in nodes] == ["m1-a", "m2-pro", "m4"]
    assert nodes[0].tier == "M1 Max" and nodes[0].user == "bench" and nodes[2].user == "bench"
    assert load_inventory(inventory) == nodes
    assert node_tables(document)[0]["tier"] == "M1"  # editing copies never touches the document


@pytest.mark.parametrize(
    ("field", "text", "needle"),
    [
        ("port", "http", "field 'port' must be an integer, got string"),
        ("port", "70000", "field 'port' must be between 1 and 65535"),
        ("hourly_usd", "-1", "field 'hourly_usd' must not be negative"),
        ("name", "a b", "field 'name'"),
        ("transport", "telnet", 'field \'transport\' must be "ssh" or "local"'),
        ("tags", "a, ", "field 'tags' must be an array of non-empty strings"),
    ],
)
def test_a_bad_field_is_refused_naming_the_real_file_and_the_field(
    inventory: Path, field: str, text: str, needle: str
) -> None:
    document = read_document(inventory)
    tables = node_tables(document)
    value = field_value(field, text)
    assert value is not None
    tables[0][field] = value
    original = inventory.read_text()
    with pytest.raises(InventoryError) as caught:
        save(with_nodes(document, tables), inventory)
    message = str(caught.value)
    assert needle in message and message.startswith(str(inventory))
    assert inventory.read_text() == original  # nothing written


def test_a_duplicate_name_and_a_missing_host_are_errors(inventory: Path) -> None:
    document = read_document(inventory)
    tables = node_tables(document)
    with pytest.raises(InventoryError, match="field 'name': duplicate node name 'm1-a'"):
        validate(with_nodes(document, [*tables, {"name": "m1-a", "host": "x"}]), inventory)
    with pytest.raises(InventoryError, match="field 'host' is missing"):
        validate(with_nodes(document, [*tables, {"name": "new"}]), inventory)


def test_a_new_file_is_created_with_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "inventory" / "local.toml"
    assert read_document(path) == {}
    save(with_nodes({}, [{"name": "local", "transport": "local"}]), path)
    assert [n.name for n in load_inventory(path)] == ["local"]


def test_form_text_and_toml_values() -> None:
    assert field_value("port", " 22 ") == 22 and field_value("port", "x") == "x"
    assert field_value("hourly_usd", "1.5") == 1.5 and field_value("purchase_usd", "cheap") == "cheap"
    assert field_value("tags", "a, b") == ["a", "b"]
    assert field_value("host", "  ") is None
    assert field_text(["a", "b"]) == "a, b" and field_text(None) == "" and field_text(2222) == "2222"


def test_a_fifo_in_place_of_the_file_is_refused_not_read(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fleet.toml"
    os.mkfifo(fifo)
    with pytest.raises(InventoryError, match="FIFO"):
        read_document(fifo)
