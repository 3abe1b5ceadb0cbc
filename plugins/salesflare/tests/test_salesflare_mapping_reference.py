"""The listing's fast contact mapping gives exactly what the plain one (kept here as the
reference: the mapping as it was before it was written for speed) gives, for any contact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from syncd_salesflare.mapping import (
    ADDRESS_KEYS,
    COMPANY_FIELD,
    FLAT_FIELDS,
    ROLE_FIELD,
    CurrentState,
    current_role,
    custom_values,
    listed_contact,
    parse_time,
    primary_address,
    record_from_contact,
    tag_names,
    text,
)

from syncd.connector import RawValue, RemoteRecord


def reference(contact: Mapping[str, Any]) -> RemoteRecord:
    data: dict[str, RawValue] = {name: text(contact.get(name)) for name in FLAT_FIELDS}
    data["name"] = text(contact.get("name"))
    account = contact.get("account")
    data[COMPANY_FIELD] = text(account.get("name")) if isinstance(account, dict) else None
    data[ROLE_FIELD] = current_role(contact)
    address = primary_address(contact) or {}
    for ours, theirs in ADDRESS_KEYS.items():
        value = address.get(theirs)
        if theirs == "state_region" and value is None:
            value = address.get("region")
        data[f"address.{ours}"] = text(value)
    data["tags"] = tag_names(contact.get("tags"))
    opt_out = contact.get("opt-out")
    data["opt-out"] = None if opt_out is None else text(bool(opt_out))
    owner = contact.get("owner")
    data["owner.email"] = text(owner.get("email")) if isinstance(owner, dict) else None
    data.update(custom_values(contact.get("custom")))
    return RemoteRecord(
        id=str(contact["id"]),
        data=data,
        updated_at=parse_time(contact.get("modification_date")),
        archived=bool(contact.get("archived")),
    )


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["", " ", "Jane", "jane@x.org"]),
    st.text(max_size=5),
    st.fixed_dictionaries({"name": st.sampled_from(["Opt", ""])}),
)
address = st.fixed_dictionaries(
    {},
    optional={
        **{key: values for key in ADDRESS_KEYS.values()},
        "region": values,
        "archived": st.booleans(),
    },
)
contact = st.fixed_dictionaries(
    {"id": st.integers(1, 10**9)},
    optional={
        **{name: values for name in FLAT_FIELDS},
        "name": values,
        "account": st.one_of(st.none(), st.fixed_dictionaries({"name": values})),
        "addresses": st.lists(address, max_size=2),
        "address": address,
        "role": values,
        "tags": st.one_of(
            st.none(),
            st.lists(
                st.one_of(
                    st.sampled_from(["a", "b", ""]),
                    st.fixed_dictionaries({"id": st.integers(1, 9), "name": values}),
                ),
                max_size=3,
            ),
        ),
        "opt-out": values,
        "owner": st.one_of(st.none(), st.fixed_dictionaries({"email": values})),
        "custom": st.one_of(
            st.none(), st.dictionaries(st.sampled_from(["x", "y"]), values, max_size=2)
        ),
        "modification_date": st.sampled_from(["2024-05-22T21:45:23.000Z", "", "bad"]),
        "archived": st.booleans(),
    },
)


@settings(max_examples=400, deadline=None)
@given(contact)
def test_the_fast_mapping_equals_the_reference(contact: dict[str, Any]) -> None:
    fast, expected = record_from_contact(contact), reference(contact)
    assert fast == expected
    assert list(fast.data) == list(expected.data)


def reference_state(contact: Mapping[str, Any]) -> CurrentState:
    address = primary_address(contact) or {}
    custom = contact.get("custom")
    return CurrentState(
        address_id=address.get("id"),
        address={k: address.get(k) for k in ADDRESS_KEYS.values()},
        custom=dict(custom) if isinstance(custom, dict) else {},
    )


@settings(max_examples=400, deadline=None)
@given(contact)
def test_the_listings_record_and_state_equal_the_references(contact: dict[str, Any]) -> None:
    record, state = listed_contact(contact)
    assert record == reference(contact)
    assert list(record.data) == list(reference(contact).data)
    assert state == reference_state(contact) == CurrentState.of(contact)
