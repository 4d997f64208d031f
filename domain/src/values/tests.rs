//! Unit tests for the validated newtypes: what each `parse` accepts, refuses and normalizes,
//! and how the values serialize.

use super::*;

fn field_of<T>(parsed: Result<T, ValidationError>) -> Option<String> {
    parsed.err().map(|error| error.field.into_owned())
}

/// Issue 15, finding 6 (and 5: a NUL never gets past parsing): hostile text is refused by
/// every text value, naming its field.
#[test]
fn control_characters_and_bidi_overrides_are_refused_in_every_text_value() {
    for hostile in [
        "\0",
        "a\0b",
        "a\u{1b}[31mb",
        "a\u{202E}b",
        "a\u{2066}b",
        "a\u{7f}b",
    ] {
        assert_eq!(
            field_of(Username::parse(hostile)),
            Some("username".to_owned()),
            "{hostile:?}"
        );
        assert_eq!(
            field_of(Password::parse(&format!("{hostile}-long-enough"))),
            Some("password".to_owned())
        );
        assert_eq!(
            field_of(PersonName::parse(hostile)),
            Some("name".to_owned())
        );
        assert_eq!(
            field_of(ProjectName::parse(hostile)),
            Some("name".to_owned())
        );
        assert_eq!(
            field_of(TaskTitle::parse(hostile)),
            Some("title".to_owned())
        );
        assert_eq!(
            field_of(Description::parse(hostile)),
            Some("description".to_owned())
        );
        assert_eq!(
            field_of(Email::parse(&format!("x{hostile}@example.com"))),
            Some("email".to_owned())
        );
    }
    assert_eq!(field_of(TaskTitle::parse("\n")), Some("title".to_owned()));
    Description::parse("line one\n\tline two\r\n").expect("line breaks in a description");
    TaskTitle::parse("Ship it 🚀").expect("emoji are text");
}

#[test]
fn e_mails_with_markup_quotes_or_literals_are_refused_and_plain_ones_kept() {
    for bad in [
        "<script>@example.com",
        "\"<b>hi</b>\"@example.com",
        "a@[127.0.0.1]",
        "a@localhost",
        "a@exa mple.com",
        "a@example..com",
        "a@@example.com",
    ] {
        assert_eq!(
            field_of(Email::parse(bad)),
            Some("email".to_owned()),
            "{bad:?}"
        );
    }
    for good in [
        "ada@example.com",
        "Ada.Lovelace+tasks@mail.example.org",
        "o'neil@example.ie",
    ] {
        assert_eq!(Email::parse(good).expect(good).as_str(), good);
    }
}

fn repeat(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

#[test]
fn username_length_boundaries() {
    assert!(Username::parse(&repeat('a', 2)).is_err());
    assert!(Username::parse(&repeat('a', 3)).is_ok());
    assert!(Username::parse(&repeat('a', 32)).is_ok());
    assert!(Username::parse(&repeat('a', 33)).is_err());
}

#[test]
fn username_is_trimmed_and_lowercased() {
    let username = Username::parse("  Alice_B.C-9 ").expect("should be accepted");
    assert_eq!(username.as_str(), "alice_b.c-9");
}

#[test]
fn username_length_counts_after_trimming() {
    assert!(Username::parse("  ab  ").is_err());
}

#[test]
fn username_rejects_bad_characters() {
    for bad in ["ali ce", "alice!", "ali@ce", "алиса", "al/ice", "al+ice"] {
        let err = Username::parse(bad).expect_err("should be refused");
        assert_eq!(err.field, "username", "{bad}");
    }
}

#[test]
fn email_accepts_plain_addresses_and_keeps_case() {
    let email = Email::parse("  Alice.Smith+tag@Example.COM ").expect("should be accepted");
    assert_eq!(email.as_str(), "Alice.Smith+tag@Example.COM");
    assert_eq!(email.normalized(), "alice.smith+tag@example.com");
}

#[test]
fn email_rejects_malformed_addresses() {
    for bad in [
        "",
        "   ",
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "alice@@example.com",
        "a@b@example.com",
        "alice@exa mple.com",
        "ali ce@example.com",
        "alice@.com",
        "alice@example.",
        "alice@example..com",
    ] {
        let err = Email::parse(bad).expect_err("should be refused");
        assert_eq!(err.field, "email", "{bad:?}");
    }
}

#[test]
fn email_length_boundary_is_254() {
    // Labels of at most 63 characters (RFC 1035), so only the total length decides.
    let address = |len: usize| {
        let mut domain = String::new();
        while domain.len() + 50 < len - 6 {
            domain.push_str(&repeat('b', 49));
            domain.push('.');
        }
        domain.push_str(&repeat('c', len - 6 - domain.len()));
        format!("a@{domain}.com")
    };
    let ok = address(254);
    let too_long = address(255);
    assert_eq!((ok.len(), too_long.len()), (254, 255));
    assert!(Email::parse(&ok).is_ok());
    assert!(Email::parse(&too_long).is_err());
}

#[test]
fn password_length_boundaries() {
    assert!(Password::parse(&repeat('x', 7)).is_err());
    assert!(Password::parse(&repeat('x', 8)).is_ok());
    assert!(Password::parse(&repeat('x', 128)).is_ok());
    assert!(Password::parse(&repeat('x', 129)).is_err());
}

#[test]
fn password_is_not_trimmed() {
    assert_eq!(
        Password::parse(" 1234567")
            .expect("should be accepted")
            .as_str(),
        " 1234567"
    );
}

#[test]
fn secrets_do_not_show_in_debug() {
    let password = Password::parse("hunter2hunter2").expect("should be accepted");
    let hash = PasswordHash::new("$argon2id$secret");
    assert!(!format!("{password:?}").contains("hunter2"));
    assert!(!format!("{hash:?}").contains("secret"));
    assert!(format!("{password:?}").contains("***"));
    assert!(format!("{hash:?}").contains("***"));
}

#[test]
fn password_hash_serializes_as_a_plain_string() {
    let hash = PasswordHash::new("$argon2id$abc");
    let json = serde_json::to_string(&hash).expect("should be accepted");
    assert_eq!(json, "\"$argon2id$abc\"");
    assert_eq!(
        serde_json::from_str::<PasswordHash>(&json).expect("should be accepted"),
        hash
    );
}

#[test]
fn age_boundaries() {
    assert!(Age::parse(-1).is_err());
    assert_eq!(Age::parse(0).expect("should be accepted").get(), 0);
    assert_eq!(Age::parse(150).expect("should be accepted").get(), 150);
    assert!(Age::parse(151).is_err());
    assert!(Age::parse(1_000).is_err());
    assert_eq!(Age::parse(151).expect_err("should be refused").field, "age");
}

#[test]
fn person_name_is_trimmed_and_bounded() {
    assert_eq!(
        PersonName::parse("  Ada ")
            .expect("should be accepted")
            .as_str(),
        "Ada"
    );
    assert!(PersonName::parse("   ").is_err());
    assert!(PersonName::parse(&repeat('é', 100)).is_ok());
    assert!(PersonName::parse(&repeat('é', 101)).is_err());
    let err = PersonName::parse("")
        .expect_err("should be refused")
        .with_field("first_name");
    assert_eq!(err.field, "first_name");
}

#[test]
fn project_name_and_task_title_are_trimmed_and_bounded() {
    assert_eq!(
        ProjectName::parse(" Apollo ")
            .expect("should be accepted")
            .as_str(),
        "Apollo"
    );
    assert!(ProjectName::parse("").is_err());
    assert!(ProjectName::parse(&repeat('a', 200)).is_ok());
    assert!(ProjectName::parse(&repeat('a', 201)).is_err());
    assert_eq!(
        TaskTitle::parse("\tWrite docs\n")
            .expect("should be accepted")
            .as_str(),
        "Write docs"
    );
    assert!(TaskTitle::parse(" ").is_err());
    assert!(TaskTitle::parse(&repeat('a', 200)).is_ok());
    assert_eq!(
        TaskTitle::parse(&repeat('a', 201))
            .expect_err("should be refused")
            .field,
        "title"
    );
}

#[test]
fn description_may_be_empty_and_is_bounded() {
    assert_eq!(
        Description::parse("").expect("should be accepted"),
        Description::empty()
    );
    assert_eq!(
        Description::parse("  indented\n")
            .expect("should be accepted")
            .as_str(),
        "  indented\n"
    );
    assert!(Description::parse(&repeat('a', 10_000)).is_ok());
    assert_eq!(
        Description::parse(&repeat('a', 10_001))
            .expect_err("should be refused")
            .field,
        "description"
    );
}

#[test]
fn validation_error_displays_field_and_message() {
    let err = Age::parse(200).expect_err("should be refused");
    assert_eq!(err.to_string(), "age: must be between 0 and 150");
}

#[test]
fn values_serialize_transparently() {
    let username = Username::parse("alice").expect("should be accepted");
    assert_eq!(
        serde_json::to_string(&username).expect("should be accepted"),
        "\"alice\""
    );
    assert_eq!(
        serde_json::to_string(&Age::parse(42).expect("should be accepted"))
            .expect("should be accepted"),
        "42"
    );
}

#[test]
fn file_names_keep_only_their_last_segment_without_control_characters() {
    let clean = |raw: &str| FileName::clean(raw).map(FileName::into_inner);
    assert_eq!(clean("report.pdf").as_deref(), Ok("report.pdf"));
    assert_eq!(clean("../../etc/passwd").as_deref(), Ok("passwd"));
    assert_eq!(clean("C:\\Users\\ada\\plan.txt").as_deref(), Ok("plan.txt"));
    assert_eq!(
        clean(" bad\u{0}\u{1b}[31mname\n.txt ").as_deref(),
        Ok("bad[31mname.txt")
    );
    assert_eq!(clean("evil\u{202E}gpj.exe").as_deref(), Ok("evilgpj.exe"));
    assert_eq!(clean("..hidden").as_deref(), Ok("hidden"));
    for nothing in ["", "   ", "..", "dir/", "\u{0}\u{7}", "a/.."] {
        assert_eq!(
            FileName::clean(nothing).map_err(|error| error.field),
            Err("file_name".into()),
            "{nothing:?}"
        );
    }
}

#[test]
fn long_file_names_are_cut_keeping_a_short_extension() {
    let long = format!("{}.pdf", "é".repeat(400));
    let cut = FileName::clean(&long).expect("cleaned");
    assert_eq!(cut.as_str().chars().count(), FileName::MAX_LEN);
    assert!(cut.as_str().ends_with("é.pdf"));
    let no_extension = "x".repeat(300);
    assert_eq!(
        FileName::clean(&no_extension)
            .expect("cleaned")
            .as_str()
            .chars()
            .count(),
        FileName::MAX_LEN
    );
}
