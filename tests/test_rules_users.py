"""The user rules, pure: lifecycle transitions, grants, names and new users and orgs.

Each transition is checked whole (the new record and its events, compared with ==), and each
refusal by its kind, ZITADEL error id and i18n key: clients branch on those.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from msgspec.structs import replace

from actors import users as rules
from actors.codes import Code, code_hash
from actors.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from actors.model import UserRef
from actors.permissions import Caller, Grant
from actors.user_records import (
    Change,
    Email,
    Human,
    Machine,
    Org,
    Phone,
    Profile,
    User,
    UserEvent,
    changed,
    existing,
    org_not_found,
)
from actors.views import UserView

NOW = 1_700_000_000_000
CODE = Code(hash=code_hash("u1", "123456"), expires_ms=NOW + 60_000)
PROFILE = Profile(
    given_name="Alice", family_name="Liddell", display_name="Alice L.", preferred_language="en"
)
HUMAN = Human(
    profile=PROFILE,
    email=Email(address="alice@example.com", verified=True),
    phone=Phone(number="+41790000000"),
    password_hash="$argon2id$old",
    password_changed_ms=1_500,
    password_code=CODE,
)
ALICE = User(
    id="u1",
    org_id="o1",
    username="alice",
    creation_ms=1_000,
    change_ms=2_000,
    sequence=7,
    failed_password_attempts=2,
    view_version=3,
    grants=(Grant(roles=("ORG_OWNER",), org_id="o1"),),
    human=HUMAN,
)
ROBOT = User(
    id="m1",
    org_id="o1",
    username="robot",
    creation_ms=1_000,
    change_ms=2_000,
    view_version=5,
    machine=Machine(name="Robot", description="does things"),
)


@contextlib.contextmanager
def expect(kind: type[ServiceError], error_id: str, key: str, **extra: object) -> Iterator[None]:
    """Raises exactly ``kind`` (not a subclass), with this ZITADEL id, i18n key and extras."""
    with pytest.raises(kind) as raised:
        yield
    assert type(raised.value) is kind
    assert (raised.value.error_id, raised.value.key) == (error_id, key)
    assert raised.value.extra == extra


def in_state(state: str, user: User = ALICE) -> User:
    return replace(user, state=state)


# -- records -------------------------------------------------------------------------------


class TestRecords:
    def test_existing_returns_a_live_user(self):
        assert existing(ALICE, "X-1") is ALICE

    @pytest.mark.parametrize("user", [None, in_state(rules.DELETED)])
    def test_existing_refuses_missing_and_deleted_users(self, user):
        with expect(NotFound, "X-1", "Errors.User.NotFound"):
            existing(user, "X-1")
        with expect(NotFound, "X-2", "Errors.User.Email.NotFound"):
            existing(user, "X-2", "Errors.User.Email.NotFound")

    def test_changed_replaces_fields_and_stamps_the_change(self):
        events = (UserEvent("user.x"),)
        change = changed(ALICE, NOW, events, username="alice2")
        assert change == Change(replace(ALICE, username="alice2", change_ms=NOW), events)
        assert change.error is None

    def test_changed_with_view_bumps_the_view_version_once(self):
        change = changed(ALICE, NOW, (), view=True)
        assert change.user == replace(ALICE, change_ms=NOW, view_version=4)

    def test_a_missing_org(self):
        error = org_not_found()
        assert (type(error), error.error_id, error.key) == (
            NotFound,
            "QUERY-iTTGJ",
            "Errors.Org.NotFound",
        )

    def test_a_user_event_has_an_empty_payload_by_default(self):
        assert UserEvent("user.locked").payload == {}


# -- lifecycle -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transition", "error_id"),
    [
        (rules.deactivate, "COMMAND-3M9ds"),
        (rules.reactivate, "COMMAND-4M0sd"),
        (rules.lock, "COMMAND-5M9fs"),
        (rules.unlock, "COMMAND-M0dos"),
        (rules.remove, "COMMAND-m9od"),
    ],
)
@pytest.mark.parametrize("user", [None, in_state(rules.DELETED)])
def test_a_transition_of_a_missing_or_deleted_user_is_not_found(transition, error_id, user):
    with expect(NotFound, error_id, "Errors.User.NotFound"):
        transition(user, NOW)


class TestDeactivate:
    @pytest.mark.parametrize("state", [rules.ACTIVE, rules.LOCKED])
    def test_an_active_or_locked_user_becomes_inactive(self, state):
        user = in_state(state)
        assert rules.deactivate(user, NOW) == Change(
            replace(user, state=rules.INACTIVE, change_ms=NOW, view_version=4),
            (UserEvent("user.deactivated"),),
        )

    def test_an_initial_user_cannot_be_deactivated(self):
        with expect(NotFound, "COMMAND-ke0fw", "Errors.User.CantDeactivateInitial"):
            rules.deactivate(in_state(rules.INITIAL), NOW)

    def test_an_inactive_user_is_already_inactive(self):
        with expect(FailedPrecondition, "COMMAND-5M0sf", "Errors.User.AlreadyInactive"):
            rules.deactivate(in_state(rules.INACTIVE), NOW)


class TestReactivate:
    def test_an_inactive_user_becomes_active(self):
        user = in_state(rules.INACTIVE)
        assert rules.reactivate(user, NOW) == Change(
            replace(user, state=rules.ACTIVE, change_ms=NOW, view_version=4),
            (UserEvent("user.reactivated"),),
        )

    @pytest.mark.parametrize("state", [rules.ACTIVE, rules.INITIAL, rules.LOCKED])
    def test_only_an_inactive_user_can_be_reactivated(self, state):
        with expect(FailedPrecondition, "COMMAND-6M0sf", "Errors.User.NotInactive"):
            rules.reactivate(in_state(state), NOW)


class TestLock:
    @pytest.mark.parametrize("state", [rules.ACTIVE, rules.INITIAL])
    def test_an_active_or_initial_user_becomes_locked(self, state):
        user = in_state(state)
        assert rules.lock(user, NOW) == Change(
            replace(user, state=rules.LOCKED, change_ms=NOW, view_version=4),
            (UserEvent("user.locked"),),
        )

    @pytest.mark.parametrize("state", [rules.INACTIVE, rules.LOCKED])
    def test_an_inactive_or_locked_user_cannot_be_locked(self, state):
        with expect(FailedPrecondition, "COMMAND-3NN8v", "Errors.User.ShouldBeActiveOrInitial"):
            rules.lock(in_state(state), NOW)


class TestUnlock:
    def test_unlocking_activates_and_forgets_the_failed_attempts(self):
        user = in_state(rules.LOCKED)
        assert rules.unlock(user, NOW) == Change(
            replace(
                user,
                state=rules.ACTIVE,
                change_ms=NOW,
                view_version=4,
                failed_password_attempts=0,
            ),
            (UserEvent("user.unlocked"),),
        )

    @pytest.mark.parametrize("state", [rules.ACTIVE, rules.INACTIVE, rules.INITIAL])
    def test_only_a_locked_user_can_be_unlocked(self, state):
        with expect(FailedPrecondition, "COMMAND-4M0ds", "Errors.User.NotLocked"):
            rules.unlock(in_state(state), NOW)


class TestRemove:
    def test_a_human_leaves_a_tombstone_without_credentials_or_grants(self):
        assert rules.remove(ALICE, NOW) == Change(
            replace(
                ALICE,
                state=rules.DELETED,
                change_ms=NOW,
                view_version=4,
                grants=(),
                human=replace(HUMAN, password_hash="", password_code=None),
            ),
            (UserEvent("user.removed", {"userName": "alice"}),),
        )

    def test_a_machine_user_is_removed_too(self):
        robot = replace(ROBOT, grants=(Grant(roles=("IAM_OWNER",)),))
        assert rules.remove(robot, NOW) == Change(
            replace(ROBOT, state=rules.DELETED, change_ms=NOW, view_version=6),
            (UserEvent("user.removed", {"userName": "robot"}),),
        )


# -- grants --------------------------------------------------------------------------------


class TestAddGrant:
    def test_an_org_grant_is_added_without_touching_the_view(self):
        grant = Grant(roles=("ORG_USER_MANAGER", "ORG_OWNER_VIEWER"), org_id="o2")
        assert rules.add_grant(ALICE, grant, NOW) == Change(
            replace(ALICE, change_ms=NOW, grants=(*ALICE.grants, grant)), ()
        )

    def test_an_instance_grant_takes_instance_roles(self):
        grant = Grant(roles=("IAM_OWNER",))
        assert rules.add_grant(ALICE, grant, NOW).user.grants == (*ALICE.grants, grant)

    def test_a_missing_user_gets_no_grant(self):
        with expect(NotFound, "COMMAND-5N9ds", "Errors.User.NotFound"):
            rules.add_grant(None, Grant(roles=("IAM_OWNER",)), NOW)

    @pytest.mark.parametrize(
        "grant",
        [
            Grant(roles=()),
            Grant(roles=(), org_id="o2"),
            Grant(roles=("ORG_OWNER",)),  # an org role on the instance
            Grant(roles=("IAM_OWNER",), org_id="o2"),  # an instance role on an org
            Grant(roles=("ORG_OWNER", "NO_SUCH_ROLE"), org_id="o2"),
        ],
    )
    def test_roles_must_fit_where_they_are_held(self, grant):
        with expect(InvalidArgument, "COMMAND-4m0fS", "Errors.Member.InvalidRole"):
            rules.add_grant(ALICE, grant, NOW)

    def test_one_grant_per_org(self):
        with expect(AlreadyExists, "COMMAND-PtXi1", "Errors.Member.AlreadyExists"):
            rules.add_grant(ALICE, Grant(roles=("ORG_USER_MANAGER",), org_id="o1"), NOW)


# -- what other parts see ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "enabled"),
    [
        (rules.ACTIVE, True),
        (rules.INITIAL, True),
        (rules.INACTIVE, False),
        (rules.LOCKED, False),
        (rules.DELETED, False),
    ],
)
def test_only_active_and_initial_users_are_enabled(state, enabled):
    assert rules.is_enabled(in_state(state)) is enabled


def test_a_human_as_a_user_check_sees_it():
    assert rules.to_ref(ALICE) == UserRef(
        id="u1",
        org_id="o1",
        state=rules.ACTIVE,
        login_name="alice",
        display_name="Alice L.",
        preferred_language="en",
        view_version=3,
    )


def test_a_machine_as_a_user_check_sees_it():
    assert rules.to_ref(ROBOT) == UserRef(
        id="m1",
        org_id="o1",
        state=rules.ACTIVE,
        login_name="robot",
        display_name="Robot",
        preferred_language="",
        view_version=5,
    )


def test_a_human_as_sessions_show_it():
    assert rules.to_view(ALICE) == UserView(
        id="u1",
        org_id="o1",
        login_name="alice",
        display_name="Alice L.",
        state=rules.ACTIVE,
        version=3,
        password_changed_ms=1_500,
    )


def test_a_machine_as_sessions_show_it():
    assert rules.to_view(ROBOT) == UserView(
        id="m1",
        org_id="o1",
        login_name="robot",
        display_name="Robot",
        state=rules.ACTIVE,
        version=5,
        password_changed_ms=0,
    )


def test_a_user_as_a_caller_carries_its_grants():
    assert rules.caller_of(ALICE) == Caller(user_id="u1", org_id="o1", grants=ALICE.grants)


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ACME", "acme"),
        ("ACME Corp.", "acme-corp"),
        ("  Zürich -- Büro 7 ", "z-rich-b-ro-7"),
        ("a__b", "a-b"),
        ("!!!", "org"),
        ("", "org"),
    ],
)
def test_slug(name, expected):
    assert rules.slug(name) == expected


def test_org_domain_is_the_slug_under_the_instance_domain():
    assert rules.org_domain("ACME Corp.", "example.com") == "acme-corp.example.com"


def test_login_names_are_the_username_then_the_org_scoped_name():
    user = replace(ALICE, username="Alice")
    assert rules.login_names(user, "acme.example.com") == ["Alice", "Alice@acme.example.com"]
    assert rules.login_name_keys(user, "ACME.example.com") == [
        "alice",
        "alice@acme.example.com",
    ]


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (PROFILE, "Alice L."),
        (replace(PROFILE, display_name=""), "Alice Liddell"),
        (replace(PROFILE, display_name="", family_name=""), "Alice"),
        (replace(PROFILE, display_name="", given_name=""), "Liddell"),
    ],
)
def test_a_humans_display_name(profile, expected):
    user = replace(ALICE, human=replace(HUMAN, profile=profile))
    assert rules.display_name(user) == expected


def test_a_machines_display_name_is_its_name_else_the_username():
    assert rules.display_name(ROBOT) == "Robot"
    assert rules.display_name(replace(ROBOT, machine=None)) == "robot"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        (0, ""),
        ("GENDER_UNSPECIFIED", ""),
        (1, "GENDER_FEMALE"),
        (2, "GENDER_MALE"),
        (3, "GENDER_DIVERSE"),
        ("GENDER_FEMALE", "GENDER_FEMALE"),
        ("GENDER_DIVERSE", "GENDER_DIVERSE"),
    ],
)
def test_gender_by_name_or_number(value, expected):
    assert rules.gender_name(value) == expected


@pytest.mark.parametrize("value", [4, -1, 99, "GENDER_OTHER", "female", "1"])
def test_an_unknown_gender_is_refused(value):
    with pytest.raises(ValidationFailed) as raised:
        rules.gender_name(value)
    assert raised.value.message == (
        "invalid Profile.Gender: value must be one of the defined enum values"
    )


# -- new users and orgs --------------------------------------------------------------------


def spec(**fields) -> rules.HumanSpec:
    base = rules.HumanSpec(
        user_id="u9",
        org_id="o1",
        username="carol",
        profile=Profile(given_name="Carol", family_name="Danvers"),
        email=Email(address="carol@example.com"),
    )
    return replace(base, **fields)


class TestNewHuman:
    def test_a_minimal_human_gets_a_display_name_and_one_event(self):
        change = rules.new_human(spec(), NOW)
        profile = Profile(given_name="Carol", family_name="Danvers", display_name="Carol Danvers")
        assert change == Change(
            User(
                id="u9",
                org_id="o1",
                username="carol",
                creation_ms=NOW,
                change_ms=NOW,
                human=Human(profile=profile, email=Email(address="carol@example.com")),
            ),
            (
                UserEvent(
                    "user.human.added",
                    {
                        "userName": "carol",
                        "firstName": "Carol",
                        "lastName": "Danvers",
                        "displayName": "Carol Danvers",
                        "email": "carol@example.com",
                    },
                ),
            ),
        )
        assert change.user.state == rules.ACTIVE

    def test_every_optional_field_reaches_the_record_and_the_added_event(self):
        profile = Profile(
            given_name="Carol",
            family_name="Danvers",
            nick_name="cap",
            display_name="Captain",
            preferred_language="de",
            gender="GENDER_FEMALE",
        )
        phone = Phone(number="+41790000001", verified=True)
        change = rules.new_human(
            spec(
                profile=profile,
                phone=phone,
                email=Email(address="carol@example.com", verified=True),
                password_hash="$argon2id$new",
                password_change_required=True,
            ),
            NOW,
        )
        assert change.user.human == Human(
            profile=profile,
            email=Email(address="carol@example.com", verified=True),
            phone=phone,
            password_hash="$argon2id$new",
            password_change_required=True,
            password_changed_ms=NOW,
        )
        assert change.events == (
            UserEvent(
                "user.human.added",
                {
                    "userName": "carol",
                    "firstName": "Carol",
                    "lastName": "Danvers",
                    "displayName": "Captain",
                    "email": "carol@example.com",
                    "nickName": "cap",
                    "preferredLanguage": "de",
                    "gender": "GENDER_FEMALE",
                    "phone": "+41790000001",
                    "changeRequired": True,
                },
            ),
            UserEvent("user.human.email.verified"),
            UserEvent("user.human.phone.verified"),
        )

    def test_unverified_contacts_with_codes_get_code_events(self):
        email_code = Code(hash="e", expires_ms=NOW + 3_600_000)
        phone_code = Code(hash="p", expires_ms=NOW + 600_000)
        change = rules.new_human(
            spec(
                email=Email(address="carol@example.com", code=email_code),
                phone=Phone(number="+41790000001", code=phone_code),
                email_code_returned=True,
            ),
            NOW,
        )
        assert change.events[1:] == (
            UserEvent(
                "user.human.email.code.added",
                {"expiry": 3_600_000_000_000, "codeReturned": True},
            ),
            UserEvent("user.human.phone.code.added", {"expiry": 600_000_000_000}),
        )
        returned_phone = rules.new_human(
            spec(phone=Phone(number="+41790000001", code=phone_code), phone_code_returned=True),
            NOW,
        )
        assert returned_phone.events[1:] == (
            UserEvent(
                "user.human.phone.code.added", {"expiry": 600_000_000_000, "codeReturned": True}
            ),
        )

    def test_an_unverified_phone_without_a_code_adds_no_event(self):
        change = rules.new_human(spec(phone=Phone(number="+41790000001")), NOW)
        assert [event.type for event in change.events] == ["user.human.added"]
        assert change.events[0].payload["phone"] == "+41790000001"


def test_a_new_machine_user():
    grants = (Grant(roles=("IAM_OWNER",)),)
    change = rules.new_machine(
        user_id="m2",
        org_id="o1",
        username="bot",
        name="Bot",
        description="builds",
        now_ms=NOW,
        grants=grants,
    )
    assert change == Change(
        User(
            id="m2",
            org_id="o1",
            username="bot",
            creation_ms=NOW,
            change_ms=NOW,
            grants=grants,
            machine=Machine(name="Bot", description="builds"),
        ),
        (
            UserEvent(
                "user.machine.added", {"userName": "bot", "name": "Bot", "description": "builds"}
            ),
        ),
    )


def test_a_new_machine_user_without_description_or_grants():
    change = rules.new_machine(
        user_id="m2", org_id="o1", username="bot", name="Bot", description="", now_ms=NOW
    )
    assert change.user.grants == ()
    assert change.events == (UserEvent("user.machine.added", {"userName": "bot", "name": "Bot"}),)


def test_a_new_org_gets_its_generated_domain():
    org, event = rules.new_org(
        org_id="o7", name="ACME Corp.", instance_domain="example.com", now_ms=NOW
    )
    assert org == Org(id="o7", name="ACME Corp.", domain="acme-corp.example.com", creation_ms=NOW)
    assert event == UserEvent("org.added", {"name": "ACME Corp."})
