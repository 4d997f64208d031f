//! The command API's own extractors (request ids, expected version, client address); the
//! shared ones (JSON body, path) are re-exported from `service_runtime::extract`. Rejections
//! are [`HttpError`]s, so every bad request gets the JSON error body.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use service_runtime::error::HttpError;
pub use service_runtime::extract::{AppJson, AppPath, AppQuery};
use service_runtime::http::{REQUEST_ID_HEADER, is_safe_request_id};

/// Where a request came from, for the metadata of the events it causes: the request id (set by
/// the observability layer when the client sent none or an unsafe one), the correlation id
/// (`x-correlation-id`, else the request id) and the causation id (`x-causation-id`, optional).
/// A client's id is kept only in a safe shape ([`is_safe_request_id`]); otherwise it is ignored.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestIds {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| is_safe_request_id(value))
                .map(str::to_owned)
        };
        let request_id = header(REQUEST_ID_HEADER).unwrap_or_default();
        Ok(Self {
            correlation_id: header("x-correlation-id").unwrap_or_else(|| request_id.clone()),
            causation_id: header("x-causation-id"),
            request_id,
        })
    }
}

/// Optimistic concurrency: the version the client last saw, from `If-Match: "3"` (or `3`) or
/// `?expected_version=3`. A stale one is refused with 409.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExpectedVersion(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for ExpectedVersion {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let from_header = parts
            .headers
            .get(axum::http::header::IF_MATCH)
            .map(|value| {
                value
                    .to_str()
                    .unwrap_or_default()
                    .trim()
                    .trim_matches('"')
                    .to_owned()
            });
        let from_query = parts.uri.query().and_then(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == "expected_version")
                .map(|(_, value)| value.to_owned())
        });
        match from_header.or(from_query) {
            None => Ok(Self(None)),
            Some(raw) => raw.parse().map(|v| Self(Some(v))).map_err(|_| {
                HttpError::invalid(format!(
                    "expected version must be a non-negative integer, got {raw:?}"
                ))
            }),
        }
    }
}

/// The client's address as the connection (or, when trusted, the proxy's `X-Forwarded-For`)
/// says: for the login throttle. Never fails.
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl FromRequestParts<crate::state::AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        Ok(Self(auth::rate_limit::client_address(
            &parts.headers,
            peer,
            state.login_throttle.trust_forwarded_for(),
        )))
    }
}
