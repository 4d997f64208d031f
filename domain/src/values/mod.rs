//! Validated newtypes. Build them from API input with `parse`; they serialize transparently
//! (as the inner string / number) in event payloads. Deserialization does *not* re-validate,
//! so stored events stay readable if a rule is tightened later; API input must go through
//! `parse`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Whether `c` may not appear in any text: a control character (NUL, escape, DEL, C1 …;
/// line breaks and tabs are refused too unless `multiline`), or a bidirectional override or
/// isolate (U+202A–U+202E, U+2066–U+2069), which makes text display other than it reads.
#[must_use]
pub fn is_forbidden_char(c: char, multiline: bool) -> bool {
    if multiline && matches!(c, '\n' | '\r' | '\t') {
        return false;
    }
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Refuses text with a character [`is_forbidden_char`] forbids, naming `field`.
///
/// # Errors
/// A [`ValidationError`] on `field`.
pub fn refuse_control_chars(
    field: &'static str,
    raw: &str,
    multiline: bool,
) -> Result<(), ValidationError> {
    if raw.chars().any(|c| is_forbidden_char(c, multiline)) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters or bidirectional overrides",
        ));
    }
    Ok(())
}

/// Trims `raw` (surrounding whitespace, tabs and line breaks go), refuses control characters
/// left inside and checks its length in characters is within
/// `min..=max`.
fn trimmed_with_len(
    field: &'static str,
    raw: &str,
    min: usize,
    max: usize,
) -> Result<String, ValidationError> {
    let value = raw.trim();
    refuse_control_chars(field, value, false)?;
    let len = value.chars().count();
    if len < min {
        return Err(if min == 1 {
            ValidationError::new(field, "must not be empty")
        } else {
            ValidationError::new(field, format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Implements `as_str`, `into_inner`, `AsRef<str>` and (optionally) `Display` for a
/// string newtype.
macro_rules! string_value {
    ($ty:ident) => {
        impl $ty {
            /// The validated value.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated value, owned.
            #[must_use]
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
    ($ty:ident, display) => {
        string_value!($ty);

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A login name: trimmed, lowercased, 3–32 characters of `[a-z0-9_.-]`. Unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Shortest allowed length.
    pub const MIN_LEN: usize = 3;
    /// Longest allowed length.
    pub const MAX_LEN: usize = 32;

    /// Trims, lowercases and validates a username.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `username` if the length or a character is not allowed.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        refuse_control_chars("username", raw.trim(), false)?;
        let value = raw.trim().to_lowercase();
        let len = value.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValidationError::new(
                "username",
                format!(
                    "must be {} to {} characters long",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ValidationError::new(
                "username",
                "may contain only letters a-z, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(value))
    }
}
string_value!(Username, display);

/// An e-mail address: trimmed, at most 254 characters, valid by RFC 5322's `addr-spec` as the
/// `email_address` crate checks it, without control characters, bidirectional overrides,
/// whitespace, a quoted local part, a domain literal or markup characters (`<`, `>`), and with a
/// domain that has a dot. Stored as typed (case kept); [`Email::normalized`] is the uniqueness key.
///
/// No `Display`, so an address is not formatted into a log line by accident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Longest allowed length.
    pub const MAX_LEN: usize = 254;

    /// Trims and validates an e-mail address.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `email` if the address is malformed or too long.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let invalid = |message: &str| ValidationError::new("email", message.to_owned());
        refuse_control_chars("email", raw.trim(), false)?;
        let value = raw.trim();
        if value.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(invalid("must be at most 254 characters"));
        }
        if value.chars().any(char::is_whitespace) {
            return Err(invalid("must not contain spaces"));
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err(invalid("must contain an '@'"));
        };
        if domain.contains('@') {
            return Err(invalid("must contain exactly one '@'"));
        }
        if local.is_empty() {
            return Err(invalid("must have a name before the '@'"));
        }
        if local.starts_with('"') || value.contains(['<', '>', '"', '[', ']', '\\']) {
            return Err(invalid(
                "may not contain quotes, brackets or '<' '>' (write it plainly, as name@example.com)",
            ));
        }
        if !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid(
                "must have a domain such as example.com after the '@'",
            ));
        }
        if !email_address::EmailAddress::is_valid(value) {
            return Err(invalid("is not a valid e-mail address"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The lowercase form: the key for uniqueness checks and look-ups.
    #[must_use]
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}
string_value!(Email);

/// A plaintext password from API input: 8–128 characters. Never serialized; `Debug` prints
/// `***`. Hash it (in the API) into a [`PasswordHash`] before building a command.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Shortest allowed length.
    pub const MIN_LEN: usize = 8;
    /// Longest allowed length.
    pub const MAX_LEN: usize = 128;

    /// Validates a password (not trimmed: spaces are significant).
    ///
    /// # Errors
    /// A [`ValidationError`] on field `password` if it is shorter than 8 or longer than 128
    /// characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        refuse_control_chars("password", raw, false)?;
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(ValidationError::new(
                "password",
                format!("must be at least {} characters", Self::MIN_LEN),
            ));
        }
        if len > Self::MAX_LEN {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The plaintext, for hashing or verifying.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The plaintext, owned.
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An opaque password hash (e.g. a PHC string from argon2). Carried in `UserRegistered` /
/// `UserPasswordChanged`; `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash string produced by the hasher. Not validated: the domain does not know
    /// the hash format.
    #[must_use]
    pub fn new(hash: impl Into<String>) -> Self {
        Self(hash.into())
    }
}
string_value!(PasswordHash);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// A first or last name: trimmed, 1–100 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    /// Longest allowed length.
    pub const MAX_LEN: usize = 100;

    /// Trims and validates a name. The error's field is `name`; rename it with
    /// [`ValidationError::with_field`] (e.g. to `first_name`).
    ///
    /// # Errors
    /// A [`ValidationError`] if the name is empty or longer than 100 characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        trimmed_with_len("name", raw, 1, Self::MAX_LEN).map(Self)
    }
}
string_value!(PersonName, display);

/// An age in years, 0–150.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Age(u8);

impl Age {
    /// Highest allowed age.
    pub const MAX: u8 = 150;

    /// Validates an age. Takes an `i64` so a negative number from JSON gets a clear message.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `age` if it is not within 0–150.
    pub fn parse(years: i64) -> Result<Self, ValidationError> {
        u8::try_from(years)
            .ok()
            .filter(|years| *years <= Self::MAX)
            .map(Self)
            .ok_or_else(|| ValidationError::new("age", "must be between 0 and 150"))
    }

    /// The age in years.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The age in years (same as [`Age::get`]).
    #[must_use]
    pub const fn into_inner(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A project name: trimmed, 1–200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    /// Longest allowed length.
    pub const MAX_LEN: usize = 200;

    /// Trims and validates a project name.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `name` if it is empty or longer than 200 characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        trimmed_with_len("name", raw, 1, Self::MAX_LEN).map(Self)
    }
}
string_value!(ProjectName, display);

/// A task title: trimmed, 1–200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskTitle(String);

impl TaskTitle {
    /// Longest allowed length.
    pub const MAX_LEN: usize = 200;

    /// Trims and validates a task title.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `title` if it is empty or longer than 200 characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        trimmed_with_len("title", raw, 1, Self::MAX_LEN).map(Self)
    }
}
string_value!(TaskTitle, display);

/// A free-text description: at most 10,000 characters, may be empty. Kept as typed
/// (not trimmed), so formatted text survives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    /// Longest allowed length.
    pub const MAX_LEN: usize = 10_000;

    /// Validates a description.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `description` if it is longer than 10,000 characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        refuse_control_chars("description", raw, true)?;
        if raw.chars().count() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "description",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The empty description.
    #[must_use]
    pub const fn empty() -> Self {
        Self(String::new())
    }
}
string_value!(Description, display);

/// A task label: trimmed, lowercased, 1–32 characters of letters, digits, spaces and `-`, `_`,
/// `.`, `:`. Labels are compared as stored, so `Bug` and `bug` are one label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Label(String);

impl Label {
    /// Longest allowed length.
    pub const MAX_LEN: usize = 32;
    /// The most labels a task carries.
    pub const MAX_PER_TASK: usize = 20;

    /// Trims, lowercases and validates a label.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `label` if it is empty, longer than 32 characters, or
    /// holds a character other than a letter, a digit, a space, `-`, `_`, `.` or `:`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let value = trimmed_with_len("label", raw, 1, Self::MAX_LEN)?.to_lowercase();
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | ':')))
        {
            return Err(ValidationError::new(
                "label",
                format!(
                    "must hold only letters, digits, spaces, '-', '_', '.' and ':' (not {c:?})"
                ),
            ));
        }
        Ok(Self(value))
    }

    /// Parses a task's labels: at most [`Label::MAX_PER_TASK`], duplicates merged.
    ///
    /// # Errors
    /// A [`ValidationError`] on field `labels` (too many) or `label` (one is invalid).
    pub fn parse_set<'a>(
        raw: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::BTreeSet<Self>, ValidationError> {
        let labels = raw
            .into_iter()
            .map(Self::parse)
            .collect::<Result<std::collections::BTreeSet<_>, _>>()?;
        if labels.len() > Self::MAX_PER_TASK {
            return Err(ValidationError::new(
                "labels",
                format!("a task has at most {} labels", Self::MAX_PER_TASK),
            ));
        }
        Ok(labels)
    }
}
string_value!(Label, display);

/// The name of an attached file as stored and shown: what a client sent, cleaned rather than
/// refused (clients send whatever the user's file is called). Only the last path segment is
/// kept (no `/` or `\`), control characters and bidirectional overrides are dropped,
/// surrounding whitespace and leading dots go, and it is cut to 255 characters, keeping a
/// short extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FileName(String);

impl FileName {
    /// Longest kept length, in characters.
    pub const MAX_LEN: usize = 255;
    /// The longest extension kept when a name is cut.
    const MAX_EXTENSION: usize = 16;

    /// Cleans a client's file name (see [`FileName`]).
    ///
    /// # Errors
    /// A [`ValidationError`] on field `file_name` if nothing is left.
    pub fn clean(raw: &str) -> Result<Self, ValidationError> {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let kept: String = last
            .chars()
            .filter(|c| !is_forbidden_char(*c, false))
            .collect();
        let kept = kept.trim().trim_start_matches('.').trim_start();
        if kept.is_empty() {
            return Err(ValidationError::new("file_name", "must name a file"));
        }
        if kept.chars().count() <= Self::MAX_LEN {
            return Ok(Self(kept.to_owned()));
        }
        let extension = kept
            .rsplit_once('.')
            .map(|(_, extension)| extension)
            .filter(|extension| (1..=Self::MAX_EXTENSION).contains(&extension.chars().count()));
        let cut = match extension {
            Some(extension) => {
                let stem: String = kept
                    .chars()
                    .take(Self::MAX_LEN - extension.chars().count() - 1)
                    .collect();
                format!("{}.{extension}", stem.trim_end())
            }
            None => kept.chars().take(Self::MAX_LEN).collect(),
        };
        Ok(Self(cut))
    }
}
string_value!(FileName, display);

#[cfg(test)]
mod tests;
