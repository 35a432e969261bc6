import pytest

from datamarket.core.audits import Property
from datamarket.mechanisms import registered_mechanisms
from tests.contract import check_contract

MECHANISMS = registered_mechanisms()


@pytest.mark.parametrize("info", MECHANISMS, ids=[m.name for m in MECHANISMS])
def test_declared_guarantees_hold(info) -> None:
    assert info.paper, "every mechanism cites its paper"
    assert info.guarantees <= set(Property)
    assert check_contract(info) == []


def test_registry_names_are_unique() -> None:
    names = [m.name for m in MECHANISMS]
    assert len(names) == len(set(names))
