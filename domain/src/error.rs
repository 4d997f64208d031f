//! Errors shared by all aggregates: the [`ErrorKind`] the API maps to an HTTP status,
//! [`ValidationError`] (bad input, 422) and [`ServiceError`] (a look-up failed, 503).

use std::borrow::Cow;

/// The class of a refusal, for the API's HTTP mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input (HTTP 422).
    Invalid,
    /// The actor may not do this (HTTP 403).
    Forbidden,
    /// The aggregate or something it refers to does not exist (HTTP 404).
    NotFound,
    /// The command conflicts with the current state (HTTP 409).
    Conflict,
    /// A service the aggregate asked failed (HTTP 503).
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Invalid => 422,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Unavailable => 503,
        }
    }

    /// A stable snake_case name (`"invalid"`, `"forbidden"`, `"not_found"`, `"conflict"`,
    /// `"unavailable"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Implemented by every domain error, so the API can map any of them generically.
pub trait DomainError: std::error::Error {
    /// The HTTP class of this error.
    fn kind(&self) -> ErrorKind;
    /// A stable, machine-readable snake_case code (e.g. `"username_taken"`) for the JSON body.
    fn code(&self) -> &'static str;
}

/// A value failed validation (HTTP 422). `field` names the offending input field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The input field, e.g. `"username"`. Static for the built-in values; the API may
    /// rename it to its DTO's field name with [`ValidationError::with_field`].
    pub field: Cow<'static, str>,
    /// What is wrong, in English, without echoing the value.
    pub message: String,
}

impl ValidationError {
    /// A validation error on `field`.
    #[must_use]
    pub fn new(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error reported on another field name (e.g. `"first_name"` instead of `"name"`).
    #[must_use]
    pub fn with_field(self, field: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            ..self
        }
    }

    /// Always [`ErrorKind::Invalid`].
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

impl DomainError for ValidationError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
    fn code(&self) -> &'static str {
        "validation_failed"
    }
}

/// A service that an aggregate asked (e.g. a uniqueness look-up) failed. Maps to
/// [`ErrorKind::Unavailable`]. The message is for logs, not for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service unavailable: {0}")]
pub struct ServiceError(pub String);

impl ServiceError {
    /// A service error with a message (for logs).
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// Always [`ErrorKind::Unavailable`].
    #[must_use]
    pub const fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
}

impl DomainError for ServiceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
    fn code(&self) -> &'static str {
        "service_unavailable"
    }
}
