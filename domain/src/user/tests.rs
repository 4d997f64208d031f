//! Given/when/then tests and a replay property for the `User` aggregate.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::DomainEvent;
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::BoxFuture;
use crate::actor::{Actor, Role};
use crate::error::{ErrorKind, ServiceError};
use crate::testing::{check_replay, id};
use crate::values::{Age, Email, PasswordHash, PersonName, Username};

const ALICE: Uuid = id(1);
const BOB: Uuid = id(2);
const ROOT: Uuid = id(9);

/// A hand-written fake: owners by username and by normalized e-mail, or "down".
#[derive(Debug, Default)]
struct FakeUserServices {
    usernames: HashMap<String, Uuid>,
    emails: HashMap<String, Uuid>,
    down: bool,
}

impl FakeUserServices {
    fn with_username(mut self, username: &str, owner: Uuid) -> Self {
        self.usernames.insert(username.to_owned(), owner);
        self
    }

    fn with_email(mut self, email: &str, owner: Uuid) -> Self {
        self.emails.insert(email.to_lowercase(), owner);
        self
    }

    fn down() -> Self {
        Self {
            down: true,
            ..Self::default()
        }
    }

    fn handle(self) -> UserServicesHandle {
        Arc::new(self)
    }
}

impl UserServices for FakeUserServices {
    fn username_owner<'a>(
        &'a self,
        username: &'a Username,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
        Box::pin(async move {
            if self.down {
                return Err(ServiceError::new("user index down"));
            }
            Ok(self.usernames.get(username.as_str()).copied())
        })
    }

    fn email_owner<'a>(
        &'a self,
        email: &'a Email,
    ) -> BoxFuture<'a, Result<Option<Uuid>, ServiceError>> {
        Box::pin(async move {
            if self.down {
                return Err(ServiceError::new("user index down"));
            }
            Ok(self.emails.get(&email.normalized()).copied())
        })
    }
}

fn framework(services: FakeUserServices) -> TestFramework<User> {
    TestFramework::with(services.handle())
}

fn ok_services() -> FakeUserServices {
    FakeUserServices::default()
}

fn username(raw: &str) -> Username {
    Username::parse(raw).expect("valid test value")
}

fn email(raw: &str) -> Email {
    Email::parse(raw).expect("valid test value")
}

fn name(raw: &str) -> PersonName {
    PersonName::parse(raw).expect("valid test value")
}

fn age(years: i64) -> Age {
    Age::parse(years).expect("valid test value")
}

fn hash(raw: &str) -> PasswordHash {
    PasswordHash::new(raw)
}

fn register(role: Role, actor: Option<Actor>) -> UserCommand {
    UserCommand::Register {
        user_id: ALICE,
        username: username("alice"),
        email: email("alice@example.com"),
        password_hash: hash("h1"),
        first_name: name("Alice"),
        last_name: name("Liddell"),
        age: Some(age(30)),
        role,
        actor,
    }
}

fn registered(role: Role) -> UserEvent {
    UserEvent::UserRegistered {
        user_id: ALICE,
        username: username("alice"),
        email: email("alice@example.com"),
        password_hash: hash("h1"),
        first_name: name("Alice"),
        last_name: name("Liddell"),
        age: Some(age(30)),
        role,
    }
}

fn alice() -> Actor {
    Actor::user(ALICE)
}

fn bob() -> Actor {
    Actor::user(BOB)
}

fn root() -> Actor {
    Actor::admin(ROOT)
}

fn no_change(actor: Actor) -> UserCommand {
    UserCommand::ChangeProfile {
        actor,
        email: None,
        first_name: None,
        last_name: None,
        age: None,
    }
}

// ---- Register ----

#[test]
fn self_registration_creates_a_user() {
    framework(ok_services())
        .given_no_previous_events()
        .when(register(Role::User, None))
        .then_expect_events(vec![registered(Role::User)]);
}

#[test]
fn self_registration_cannot_create_an_admin() {
    framework(ok_services())
        .given_no_previous_events()
        .when(register(Role::Admin, None))
        .then_expect_error(UserError::Forbidden);
}

#[test]
fn an_admin_may_register_an_admin() {
    framework(ok_services())
        .given_no_previous_events()
        .when(register(Role::Admin, Some(root())))
        .then_expect_events(vec![registered(Role::Admin)]);
}

#[test]
fn an_admin_may_register_a_user() {
    framework(ok_services())
        .given_no_previous_events()
        .when(register(Role::User, Some(root())))
        .then_expect_events(vec![registered(Role::User)]);
}

#[test]
fn a_non_admin_actor_cannot_register_anyone() {
    framework(ok_services())
        .given_no_previous_events()
        .when(register(Role::User, Some(bob())))
        .then_expect_error(UserError::Forbidden);
}

#[test]
fn registering_twice_is_a_conflict() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(register(Role::User, None))
        .then_expect_error(UserError::AlreadyRegistered);
}

#[test]
fn a_username_owned_by_another_user_is_taken() {
    framework(ok_services().with_username("alice", BOB))
        .given_no_previous_events()
        .when(register(Role::User, None))
        .then_expect_error(UserError::UsernameTaken);
}

#[test]
fn a_username_already_reserved_for_the_same_id_is_accepted() {
    framework(ok_services().with_username("alice", ALICE))
        .given_no_previous_events()
        .when(register(Role::User, None))
        .then_expect_events(vec![registered(Role::User)]);
}

#[test]
fn an_email_owned_by_another_user_is_taken_whatever_its_case() {
    framework(ok_services().with_email("ALICE@Example.com", BOB))
        .given_no_previous_events()
        .when(register(Role::User, None))
        .then_expect_error(UserError::EmailTaken);
}

#[test]
fn register_fails_as_unavailable_when_the_look_up_fails() {
    framework(FakeUserServices::down())
        .given_no_previous_events()
        .when(register(Role::User, None))
        .then_expect_error(UserError::Unavailable(ServiceError::new("user index down")));
}

// ---- ChangeProfile ----

#[test]
fn a_user_changes_only_the_fields_that_differ() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: alice(),
            email: Some(email("alice@example.com")),
            first_name: Some(name("Alicia")),
            last_name: Some(name("Liddell")),
            age: Some(Some(age(31))),
        })
        .then_expect_events(vec![UserEvent::UserProfileChanged {
            email: None,
            first_name: Some(name("Alicia")),
            last_name: None,
            age: Some(Some(age(31))),
        }]);
}

#[test]
fn a_user_may_clear_their_age() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: alice(),
            email: None,
            first_name: None,
            last_name: None,
            age: Some(None),
        })
        .then_expect_events(vec![UserEvent::UserProfileChanged {
            email: None,
            first_name: None,
            last_name: None,
            age: Some(None),
        }]);
}

#[test]
fn a_user_may_change_their_email_to_a_free_one() {
    framework(ok_services().with_email("alice@example.com", ALICE))
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: alice(),
            email: Some(email("alice@new.example")),
            first_name: None,
            last_name: None,
            age: None,
        })
        .then_expect_events(vec![UserEvent::UserProfileChanged {
            email: Some(email("alice@new.example")),
            first_name: None,
            last_name: None,
            age: None,
        }]);
}

#[test]
fn an_admin_may_change_anyones_profile() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: root(),
            email: None,
            first_name: None,
            last_name: Some(name("Hargreaves")),
            age: None,
        })
        .then_expect_events(vec![UserEvent::UserProfileChanged {
            email: None,
            first_name: None,
            last_name: Some(name("Hargreaves")),
            age: None,
        }]);
}

#[test]
fn another_user_cannot_change_a_profile() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: bob(),
            email: None,
            first_name: Some(name("Mallory")),
            last_name: None,
            age: None,
        })
        .then_expect_error(UserError::Forbidden);
}

#[test]
fn a_profile_change_that_changes_nothing_writes_no_event() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(no_change(alice()))
        .then_expect_events(vec![]);
}

#[test]
fn a_profile_change_to_the_same_email_asks_no_service() {
    framework(FakeUserServices::down())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: alice(),
            email: Some(email("alice@example.com")),
            first_name: None,
            last_name: None,
            age: Some(Some(age(30))),
        })
        .then_expect_events(vec![]);
}

#[test]
fn changing_to_an_email_of_another_user_is_refused() {
    framework(ok_services().with_email("bob@example.com", BOB))
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: alice(),
            email: Some(email("Bob@Example.com")),
            first_name: None,
            last_name: None,
            age: None,
        })
        .then_expect_error(UserError::EmailTaken);
}

#[test]
fn changing_the_email_while_the_look_up_fails_is_unavailable() {
    framework(FakeUserServices::down())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeProfile {
            actor: alice(),
            email: Some(email("alice@new.example")),
            first_name: None,
            last_name: None,
            age: None,
        })
        .then_expect_error(UserError::Unavailable(ServiceError::new("user index down")));
}

#[test]
fn changing_the_profile_of_an_unregistered_user_is_not_found() {
    framework(ok_services())
        .given_no_previous_events()
        .when(no_change(root()))
        .then_expect_error(UserError::NotFound);
}

#[test]
fn a_deactivated_user_cannot_change_their_profile() {
    framework(ok_services())
        .given(vec![registered(Role::User), UserEvent::UserDeactivated])
        .when(no_change(alice()))
        .then_expect_error(UserError::Deactivated);
}

#[test]
fn an_admin_cannot_change_the_profile_of_a_deactivated_user() {
    framework(ok_services())
        .given(vec![registered(Role::User), UserEvent::UserDeactivated])
        .when(no_change(root()))
        .then_expect_error(UserError::Deactivated);
}

// ---- ChangePassword ----

#[test]
fn a_user_changes_their_password() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangePassword {
            actor: alice(),
            password_hash: hash("h2"),
        })
        .then_expect_events(vec![UserEvent::UserPasswordChanged {
            password_hash: hash("h2"),
        }]);
}

#[test]
fn an_admin_changes_a_password() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangePassword {
            actor: root(),
            password_hash: hash("h2"),
        })
        .then_expect_events(vec![UserEvent::UserPasswordChanged {
            password_hash: hash("h2"),
        }]);
}

#[test]
fn another_user_cannot_change_a_password() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangePassword {
            actor: bob(),
            password_hash: hash("h2"),
        })
        .then_expect_error(UserError::Forbidden);
}

#[test]
fn changing_the_password_of_an_unregistered_user_is_not_found() {
    framework(ok_services())
        .given_no_previous_events()
        .when(UserCommand::ChangePassword {
            actor: alice(),
            password_hash: hash("h2"),
        })
        .then_expect_error(UserError::NotFound);
}

#[test]
fn a_deactivated_user_cannot_change_their_password() {
    framework(ok_services())
        .given(vec![registered(Role::User), UserEvent::UserDeactivated])
        .when(UserCommand::ChangePassword {
            actor: alice(),
            password_hash: hash("h2"),
        })
        .then_expect_error(UserError::Deactivated);
}

// ---- ChangeRole ----

#[test]
fn an_admin_promotes_a_user() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeRole {
            actor: root(),
            role: Role::Admin,
        })
        .then_expect_events(vec![UserEvent::UserRoleChanged { role: Role::Admin }]);
}

#[test]
fn giving_the_same_role_writes_no_event() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeRole {
            actor: root(),
            role: Role::User,
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_user_cannot_promote_themself() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::ChangeRole {
            actor: alice(),
            role: Role::Admin,
        })
        .then_expect_error(UserError::Forbidden);
}

#[test]
fn an_admin_may_change_the_role_of_a_deactivated_user() {
    framework(ok_services())
        .given(vec![registered(Role::Admin), UserEvent::UserDeactivated])
        .when(UserCommand::ChangeRole {
            actor: root(),
            role: Role::User,
        })
        .then_expect_events(vec![UserEvent::UserRoleChanged { role: Role::User }]);
}

#[test]
fn changing_the_role_of_an_unregistered_user_is_not_found() {
    framework(ok_services())
        .given_no_previous_events()
        .when(UserCommand::ChangeRole {
            actor: root(),
            role: Role::Admin,
        })
        .then_expect_error(UserError::NotFound);
}

// ---- Deactivate ----

#[test]
fn a_user_deactivates_themself() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::Deactivate { actor: alice() })
        .then_expect_events(vec![UserEvent::UserDeactivated]);
}

#[test]
fn an_admin_deactivates_a_user() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::Deactivate { actor: root() })
        .then_expect_events(vec![UserEvent::UserDeactivated]);
}

#[test]
fn another_user_cannot_deactivate_a_user() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(UserCommand::Deactivate { actor: bob() })
        .then_expect_error(UserError::Forbidden);
}

#[test]
fn deactivating_twice_is_a_conflict() {
    framework(ok_services())
        .given(vec![registered(Role::User), UserEvent::UserDeactivated])
        .when(UserCommand::Deactivate { actor: root() })
        .then_expect_error(UserError::Deactivated);
}

#[test]
fn deactivating_an_unregistered_user_is_not_found() {
    framework(ok_services())
        .given_no_previous_events()
        .when(UserCommand::Deactivate { actor: root() })
        .then_expect_error(UserError::NotFound);
}

// ---- state, events, errors ----

#[test]
fn applied_events_build_the_profile() {
    let (user, _) = check_replay::<User>(
        &ok_services().handle(),
        vec![
            register(Role::User, None),
            UserCommand::ChangeProfile {
                actor: alice(),
                email: None,
                first_name: None,
                last_name: None,
                age: Some(None),
            },
            UserCommand::Deactivate { actor: alice() },
        ],
    );
    let profile = user.profile().expect("the aggregate exists");
    assert_eq!(profile.user_id, ALICE);
    assert_eq!(profile.age, None);
    assert!(!profile.active);
}

#[test]
fn event_types_are_the_variant_names_at_version_1_0() {
    let events = [
        (registered(Role::User), "UserRegistered"),
        (
            UserEvent::UserProfileChanged {
                email: None,
                first_name: None,
                last_name: None,
                age: None,
            },
            "UserProfileChanged",
        ),
        (
            UserEvent::UserPasswordChanged {
                password_hash: hash("h"),
            },
            "UserPasswordChanged",
        ),
        (
            UserEvent::UserRoleChanged { role: Role::Admin },
            "UserRoleChanged",
        ),
        (UserEvent::UserDeactivated, "UserDeactivated"),
    ];
    for (event, name) in events {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), "1.0");
    }
}

#[test]
fn profile_changed_keeps_cleared_apart_from_unchanged_in_json() {
    let cleared = UserEvent::UserProfileChanged {
        email: None,
        first_name: None,
        last_name: None,
        age: Some(None),
    };
    let unchanged = UserEvent::UserProfileChanged {
        email: None,
        first_name: Some(name("Ada")),
        last_name: None,
        age: None,
    };
    let cleared_json = serde_json::to_value(&cleared).expect("JSON round trip");
    let unchanged_json = serde_json::to_value(&unchanged).expect("JSON round trip");
    assert_eq!(
        cleared_json,
        serde_json::json!({ "UserProfileChanged": { "age": null } })
    );
    assert_eq!(
        unchanged_json,
        serde_json::json!({ "UserProfileChanged": { "first_name": "Ada" } })
    );
    assert_eq!(
        serde_json::from_value::<UserEvent>(cleared_json).expect("JSON round trip"),
        cleared
    );
    assert_eq!(
        serde_json::from_value::<UserEvent>(unchanged_json).expect("JSON round trip"),
        unchanged
    );
}

#[test]
fn registered_event_json_has_the_documented_shape() {
    let json = serde_json::to_value(registered(Role::Admin)).expect("JSON round trip");
    assert_eq!(
        json,
        serde_json::json!({ "UserRegistered": {
            "user_id": ALICE,
            "username": "alice",
            "email": "alice@example.com",
            "password_hash": "h1",
            "first_name": "Alice",
            "last_name": "Liddell",
            "age": 30,
            "role": "admin",
        }})
    );
}

#[test]
fn errors_map_to_their_kinds() {
    assert_eq!(UserError::NotFound.kind(), ErrorKind::NotFound);
    assert_eq!(UserError::Forbidden.kind(), ErrorKind::Forbidden);
    for conflict in [
        UserError::AlreadyRegistered,
        UserError::UsernameTaken,
        UserError::EmailTaken,
        UserError::Deactivated,
    ] {
        assert_eq!(conflict.kind(), ErrorKind::Conflict, "{conflict:?}");
    }
    assert_eq!(
        UserError::Unavailable(ServiceError::new("x")).kind(),
        ErrorKind::Unavailable
    );
}

// ---- MarkNotificationsRead ----

fn at_day(day: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(20_000 + day)
}

fn mark_read(actor: Actor, day: i64) -> UserCommand {
    UserCommand::MarkNotificationsRead {
        actor,
        up_to: at_day(day),
    }
}

#[test]
fn a_user_marks_their_notifications_read_up_to_a_time() {
    framework(ok_services())
        .given(vec![registered(Role::User)])
        .when(mark_read(alice(), 2))
        .then_expect_events(vec![UserEvent::UserNotificationsRead { up_to: at_day(2) }]);
}

#[test]
fn the_read_watermark_only_moves_forward() {
    let read_at_day_2 = UserEvent::UserNotificationsRead { up_to: at_day(2) };
    framework(ok_services())
        .given(vec![registered(Role::User), read_at_day_2.clone()])
        .when(mark_read(alice(), 1))
        .then_expect_events(vec![]);
    framework(ok_services())
        .given(vec![registered(Role::User), read_at_day_2.clone()])
        .when(mark_read(alice(), 2))
        .then_expect_events(vec![]);
    framework(ok_services())
        .given(vec![registered(Role::User), read_at_day_2])
        .when(mark_read(alice(), 3))
        .then_expect_events(vec![UserEvent::UserNotificationsRead { up_to: at_day(3) }]);
}

#[test]
fn nobody_else_marks_a_users_notifications_read_not_even_an_admin() {
    for actor in [bob(), root()] {
        framework(ok_services())
            .given(vec![registered(Role::User)])
            .when(mark_read(actor, 2))
            .then_expect_error(UserError::Forbidden);
    }
}

#[test]
fn a_deactivated_user_cannot_mark_notifications_read() {
    framework(ok_services())
        .given(vec![registered(Role::User), UserEvent::UserDeactivated])
        .when(mark_read(alice(), 2))
        .then_expect_error(UserError::Deactivated);
}

#[test]
fn notifications_read_event_json_has_the_documented_shape() {
    let event = UserEvent::UserNotificationsRead { up_to: at_day(0) };
    let json = serde_json::to_value(&event).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({ "UserNotificationsRead": { "up_to": "2024-10-04T00:00:00Z" } })
    );
    assert_eq!(
        serde_json::from_value::<UserEvent>(json).expect("back"),
        event
    );
}

// ---- property: replaying accepted events equals the running state ----

fn arb_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        Just(alice()),
        Just(bob()),
        Just(root()),
        Just(Actor::admin(ALICE)),
    ]
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Admin)]
}

fn arb_username() -> impl Strategy<Value = Username> {
    prop_oneof![Just("alice"), Just("Alice2"), Just("taken")].prop_map(username)
}

fn arb_email() -> impl Strategy<Value = Email> {
    prop_oneof![
        Just("alice@example.com"),
        Just("ALICE@example.com"),
        Just("alice@new.example"),
        Just("taken@example.com"),
    ]
    .prop_map(email)
}

fn arb_name() -> impl Strategy<Value = PersonName> {
    prop_oneof![Just("Alice"), Just("Liddell"), Just("Ada")].prop_map(name)
}

fn arb_age() -> impl Strategy<Value = Option<Age>> {
    proptest::option::of((0_i64..=150).prop_map(age))
}

fn arb_register() -> impl Strategy<Value = UserCommand> {
    (
        arb_username(),
        arb_email(),
        arb_name(),
        arb_name(),
        arb_age(),
        arb_role(),
        proptest::option::of(arb_actor()),
    )
        .prop_map(
            |(username, email, first_name, last_name, age, role, actor)| UserCommand::Register {
                user_id: ALICE,
                username,
                email,
                password_hash: hash("h"),
                first_name,
                last_name,
                age,
                role,
                actor,
            },
        )
}

fn arb_command() -> impl Strategy<Value = UserCommand> {
    prop_oneof![
        1 => arb_register(),
        4 => (
            arb_actor(),
            proptest::option::of(arb_email()),
            proptest::option::of(arb_name()),
            proptest::option::of(arb_name()),
            proptest::option::of(arb_age()),
        )
            .prop_map(|(actor, email, first_name, last_name, age)| {
                UserCommand::ChangeProfile { actor, email, first_name, last_name, age }
            }),
        2 => (arb_actor(), "[a-z]{1,4}").prop_map(|(actor, raw)| UserCommand::ChangePassword {
            actor,
            password_hash: hash(&raw),
        }),
        2 => (arb_actor(), arb_role()).prop_map(|(actor, role)| UserCommand::ChangeRole { actor, role }),
        1 => arb_actor().prop_map(|actor| UserCommand::Deactivate { actor }),
        2 => (arb_actor(), 0_i64..5).prop_map(|(actor, day)| UserCommand::MarkNotificationsRead {
            actor,
            up_to: at_day(day),
        }),
    ]
}

proptest! {
    #[test]
    fn replaying_accepted_user_events_rebuilds_the_state(
        start_registered in proptest::bool::weighted(0.8),
        commands in proptest::collection::vec(arb_command(), 0..30),
        down in proptest::bool::weighted(0.1),
    ) {
        let services = FakeUserServices {
            down,
            ..ok_services()
                .with_username("taken", BOB)
                .with_email("taken@example.com", BOB)
        }
        .handle();
        let mut all = Vec::new();
        if start_registered {
            all.push(register(Role::User, None));
        }
        all.extend(commands);
        check_replay::<User>(&services, all);
    }
}
