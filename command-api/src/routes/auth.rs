//! `POST /auth/register`, `/auth/token`, `/auth/logout` and the seeds' aliases `/register`,
//! `/login`, `/token`, `/logout`.

use auth::AuthUser;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use domain::{Age, Email, Password, PersonName, Role, UserCommand, Username, ValidationError};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, HttpError};
use crate::extract::{AppJson, ClientAddress, RequestIds};
use crate::state::{AppState, metadata};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/register", post(register))
        .route("/auth/token", post(token))
        .route("/token", post(token))
        .route("/login", post(token))
        .route("/auth/logout", post(logout))
        .route("/logout", post(logout))
}

/// A new account (self-registration creates a `user`; admins create others with `POST /users`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 characters of `a-z 0-9 _ . -` (stored lowercase; unique, case-insensitive).
    #[schema(example = "ada")]
    pub username: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 8 characters.
    #[schema(example = "correct horse battery")]
    pub password: String,
    #[schema(example = "Ada")]
    pub first_name: String,
    #[schema(example = "Lovelace")]
    pub last_name: String,
    /// 0–150.
    pub age: Option<i64>,
}

/// The validated parts of a registration, shared with `POST /users`.
pub(crate) struct NewUser {
    pub username: Username,
    pub email: Email,
    pub password: Password,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub age: Option<Age>,
}

impl TryFrom<RegisterRequest> for NewUser {
    type Error = ValidationError;

    fn try_from(dto: RegisterRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            username: Username::parse(&dto.username)?,
            email: Email::parse(&dto.email)?,
            password: Password::parse(&dto.password)?,
            first_name: PersonName::parse(&dto.first_name)
                .map_err(|e| e.with_field("first_name"))?,
            last_name: PersonName::parse(&dto.last_name).map_err(|e| e.with_field("last_name"))?,
            age: dto.age.map(Age::parse).transpose()?,
        })
    }
}

/// Registers `user` with `role` on behalf of `actor` (None: self-registration).
pub(crate) async fn register_user(
    state: &AppState,
    user: NewUser,
    role: Role,
    actor: Option<domain::Actor>,
    ids: RequestIds,
) -> Result<Response, ApiError> {
    let password_hash = auth::hash_password(&user.password)
        .await
        .map_err(|e| HttpError::internal(&e))?;
    let user_id = Uuid::now_v7();
    let command = UserCommand::Register {
        user_id,
        username: user.username,
        email: user.email,
        password_hash,
        first_name: user.first_name,
        last_name: user.last_name,
        age: user.age,
        role,
        actor,
    };
    let meta = metadata(ids, actor.map(|a| a.user_id).or(Some(user_id)));
    state.users.create_with(user_id, command, meta).await
}

#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = crate::state::CommandReply),
        (status = 409, description = "Username or email taken"),
        (status = 422, description = "Invalid input"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ids: RequestIds,
    AppJson(dto): AppJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let user = NewUser::try_from(dto)?;
    register_user(&state, user, Role::User, None, ids).await
}

/// Credentials, as JSON or as an OAuth2 password-grant form.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    #[schema(example = "ada")]
    pub username: String,
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// `password` when given (OAuth2 form); any other grant is refused.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// Accepted and ignored (OAuth2 form clients send it).
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// A JSON body or an `application/x-www-form-urlencoded` one, by the request's content type.
#[derive(Debug)]
pub struct JsonOrForm<T>(pub T);

impl<S, T> FromRequest<S> for JsonOrForm<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + 'static,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let Form(value) = Form::<T>::from_request(request, state)
                .await
                .map_err(HttpError::from)?;
            Ok(Self(value))
        } else {
            let AppJson(value) = AppJson::<T>::from_request(request, state).await?;
            Ok(Self(value))
        }
    }
}

/// The token reply of OAuth2's password grant.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TokenReply {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

#[utoipa::path(post, path = "/auth/token", tag = "auth",
    request_body(content = TokenRequest, description = "JSON, or an OAuth2 password-grant form"),
    responses(
        (status = 200, description = "A bearer token", body = TokenReply),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "Wrong username or password"),
        (status = 403, description = "The account is deactivated"),
        (status = 413, description = "Body too large"),
        (status = 415, description = "Neither JSON nor a form"),
        (status = 422, description = "Invalid input"),
        (status = 429, description = "Too many failed logins for this account or from this client \
            (or too many requests); see `Retry-After`"),
        (status = 503, description = "PostgreSQL is unavailable"),
    ))]
pub async fn token(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    JsonOrForm(request): JsonOrForm<TokenRequest>,
) -> Result<Response, ApiError> {
    if request
        .grant_type
        .as_deref()
        .is_some_and(|grant| grant != "password")
    {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_grant_type",
            "only the password grant is supported",
        )
        .into());
    }
    let account = request.username.as_str();
    let throttle = &state.login_throttle;
    if let Err(throttled) = throttle.check(account, &client).await {
        return Ok(throttled.into_response());
    }
    let wrong = || HttpError::unauthorized("wrong username or password");
    let password = Password::parse(&request.password).map_err(|_| wrong());
    let credentials = match Username::parse(&request.username) {
        Ok(username) => state
            .registry
            .credentials(&username)
            .await
            .map_err(|e| HttpError::unavailable("postgres", &e))?,
        Err(_) => None,
    };
    let (Some(credentials), Ok(password)) = (credentials, password) else {
        // Spend the time a real check would, so timing does not tell which usernames exist.
        auth::dummy_verify().await;
        throttle.failed(account, &client).await;
        return Err(wrong().into());
    };
    if !auth::verify_password(&password, &credentials.password_hash).await {
        throttle.failed(account, &client).await;
        return Err(wrong().into());
    }
    throttle.succeeded(account, &client).await;
    if !credentials.active {
        return Err(HttpError::forbidden("this account is deactivated").into());
    }
    let issued = state
        .tokens
        .issue_for(
            credentials.user_id,
            credentials.role,
            credentials.token_generation,
        )
        .map_err(|e| HttpError::internal(&e))?;
    Ok(Json(TokenReply {
        access_token: issued.access_token,
        token_type: issued.token_type,
        expires_in: issued.expires_in,
    })
    .into_response())
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "The token no longer works, on both APIs"),
        (status = 401, description = "Missing, invalid, expired or already revoked token"),
    ))]
pub async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    state
        .revocations
        .revoke(&user.claims)
        .await
        .map_err(|e| HttpError::unavailable("postgres", &e))?;
    Ok(StatusCode::NO_CONTENT)
}
