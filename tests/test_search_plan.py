"""Which indexes a listing reads: never every session for a caller who may not see them all."""

from __future__ import annotations

from actors.permissions import Caller, Grant
from actors.queries import SessionFilter
from storage import keys
from storage.index_plan import candidate_indexes

ADMIN = Caller(user_id="a", grants=(Grant(roles=("IAM_OWNER_VIEWER",)),))
ORG_OWNER = Caller(user_id="o", grants=(Grant(roles=("ORG_OWNER",), org_id="org1"),))
PLAIN = Caller(user_id="u", agent_id="fp")


def test_an_instance_reader_without_filters_reads_the_creation_index():
    assert candidate_indexes(SessionFilter(), ADMIN) == [keys.SESSIONS_BY_CREATION]


def test_a_selective_query_reads_only_its_index():
    query = SessionFilter(user_id="x")
    assert candidate_indexes(query, PLAIN) == [keys.sessions_of_user("x")]


def test_a_plain_caller_reads_only_their_own_indexes():
    assert candidate_indexes(SessionFilter(), PLAIN) == [
        keys.sessions_of_user("u"),
        keys.sessions_of_creator("u"),
        keys.sessions_of_fingerprint("fp"),
    ]


def test_an_org_reader_reads_the_org_index_too():
    found = candidate_indexes(SessionFilter(), ORG_OWNER)
    assert found[0] == keys.sessions_of_org("org1")
    assert keys.SESSIONS_BY_CREATION not in found
