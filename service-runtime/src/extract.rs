//! The extractors both APIs share. Their rejections are [`HttpError`]s, so every bad request
//! gets the JSON error body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::error::HttpError;

/// A JSON body. Unknown fields (every DTO denies them) and keys starting with `$` anywhere in the
/// document are refused with 422; malformed JSON is 400; a body over the limit is 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(request, state).await?;
        if let Some(key) = dollar_key(&value) {
            return Err(HttpError::invalid(format!(
                "keys starting with `$` are not allowed (found `{key}`)"
            )));
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|error| HttpError::invalid(error.to_string()))
    }
}

fn dollar_key(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, inner)| {
            if key.starts_with('$') {
                Some(key.as_str())
            } else {
                dollar_key(inner)
            }
        }),
        Value::Array(items) => items.iter().find_map(dollar_key),
        _ => None,
    }
}

/// Path parameters; a malformed one is a 400 `invalid_id`.
#[derive(Debug, Clone, Copy)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The one `{id}` of a path, which must be a UUID: otherwise 400 `invalid_id` naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let AppPath(raw) = AppPath::<String>::from_request_parts(parts, state).await?;
        Uuid::parse_str(&raw).map(Self).map_err(|_| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_id",
                format!("{raw:?} is not a valid id (expected a UUID)"),
            )
        })
    }
}

/// Query parameters; an unknown or malformed one is a 422 `invalid` naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dollar_key_is_found_at_any_depth() {
        let value = serde_json::json!({"a": [{"b": {"$where": 1}}]});
        assert_eq!(dollar_key(&value), Some("$where"));
        assert_eq!(dollar_key(&serde_json::json!({"a": ["$not-a-key"]})), None);
    }
}
