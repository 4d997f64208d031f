//! Makes an API's OpenAPI document tell the truth about errors (issue 15, finding 11): every
//! operation lists every error status the service can answer, each with the error body's schema
//! (`Error`, see [`crate::error::ErrorBody`]); string properties that hold a closed set of values
//! (a task's `status`, a user's `role`) are enums; operations that take an expected version
//! document `If-Match`.
//!
//! Use it as a utoipa modifier: `#[openapi(modifiers(&BearerAuth, &TruthfulErrors::COMMANDS))]`,
//! and serve the document with [`docs_router`].

use serde_json::{Value, json};
use utoipa::Modify;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder, Schema};

/// Declares the `bearer` (JWT) security scheme that authenticated operations name.
#[derive(Debug, Clone, Copy)]
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `/docs` (Swagger UI, its assets vendored in the binary: it works offline) and
/// `/openapi.json`, serving `document`.
pub fn docs_router<S: Clone + Send + Sync + 'static>(document: OpenApi) -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new("/docs")
        .url("/openapi.json", document)
        .into()
}

/// The name of the error body's schema in `components.schemas`.
pub const ERROR_SCHEMA: &str = "Error";

/// The values of a task's `status`.
pub const TASK_STATUSES: &[&str] = &["pending", "in_progress", "done", "cancelled"];
/// The values of a task's `priority`.
pub const TASK_PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
/// The values of a user's `role`.
pub const ROLES: &[&str] = &["user", "admin"];

/// Adds the error statuses an API answers to every operation of its document.
#[derive(Debug, Clone, Copy)]
pub struct TruthfulErrors {
    /// `(status, description)` added to every operation that does not list the status yet.
    pub statuses: &'static [(u16, &'static str)],
    /// Document `If-Match` on operations whose path has an `{id}` and that change something.
    pub if_match: bool,
}

const BAD_REQUEST: (u16, &str) = (
    400,
    "`invalid_id` (a path id is not a UUID) or malformed JSON",
);
const UNAUTHORIZED: (u16, &str) = (401, "Missing, invalid, expired or revoked token");
const FORBIDDEN: (u16, &str) = (403, "Not allowed for this user");
const NOT_FOUND: (u16, &str) = (404, "No such resource (or not visible to you)");
const CONFLICT: (u16, &str) = (409, "Conflict (a version, a state or a unique value)");
const READ_MODEL_BEHIND: (u16, &str) = (
    409,
    "`read_model_behind`: the read model did not reach `min_version` (of `wait_for` on a list) \
     in time; `Retry-After: 1`",
);
const TOO_LARGE: (u16, &str) = (413, "Request body too large");
const MEDIA_TYPE: (u16, &str) = (415, "The body is not `application/json`");
const INVALID: (u16, &str) = (422, "Invalid input; `details.field` names it");
const TOO_MANY: (u16, &str) = (429, "Rate limited; see `Retry-After`");
const UNAVAILABLE: (u16, &str) = (
    503,
    "A dependency is unavailable; `details.dependency` names it",
);

impl TruthfulErrors {
    /// The command API's errors.
    pub const COMMANDS: Self = Self {
        statuses: &[
            BAD_REQUEST,
            UNAUTHORIZED,
            FORBIDDEN,
            NOT_FOUND,
            CONFLICT,
            TOO_LARGE,
            MEDIA_TYPE,
            INVALID,
            TOO_MANY,
            UNAVAILABLE,
        ],
        if_match: true,
    };

    /// The query API's errors.
    pub const QUERIES: Self = Self {
        statuses: &[
            BAD_REQUEST,
            UNAUTHORIZED,
            FORBIDDEN,
            NOT_FOUND,
            READ_MODEL_BEHIND,
            INVALID,
            TOO_MANY,
            UNAVAILABLE,
        ],
        if_match: false,
    };
}

fn error_schema() -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String).build();
    let inner = ObjectBuilder::new()
        .property("code", string())
        .required("code")
        .property("message", string())
        .required("message")
        .property(
            "details",
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue),
        )
        .build();
    Schema::Object(
        ObjectBuilder::new()
            .property("error", inner)
            .required("error")
            .build(),
    )
}

fn error_content() -> Content {
    Content::new(Some(RefOr::Ref(Ref::from_schema_name(ERROR_SCHEMA))))
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content())
        .build()
}

fn if_match() -> Parameter {
    ParameterBuilder::new()
        .name("If-Match")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The version you last saw, as `\"3\"` (or `3`): a stale one is refused with 409 \
             `version_conflict`",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
        .build()
}

impl TruthfulErrors {
    fn operation(&self, path: &str, changes: bool, operation: &mut Operation) {
        let responses = &mut operation.responses.responses;
        for (status, description) in self.statuses {
            let key = status.to_string();
            match responses.get_mut(&key) {
                None => {
                    responses.insert(key, RefOr::T(error_response(description)));
                }
                Some(RefOr::T(response)) if response.content.is_empty() => {
                    response
                        .content
                        .insert("application/json".to_owned(), error_content());
                    if response.description.is_empty() {
                        response.description = (*description).to_owned();
                    }
                }
                Some(_) => {}
            }
        }
        if self.if_match && changes && path.contains("{id}") {
            let parameters = operation.parameters.get_or_insert_with(Vec::new);
            if !parameters
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case("if-match"))
            {
                parameters.push(if_match());
            }
        }
    }
}

/// Turns string properties named `status` / `priority` / `role` (anywhere in the component schemas) into
/// enums of their values.
fn enums(schema: &mut Schema) {
    let object = match schema {
        Schema::Object(object) => object,
        Schema::AllOf(all) => return all.items.iter_mut().for_each(enums_in),
        Schema::OneOf(one) => return one.items.iter_mut().for_each(enums_in),
        Schema::Array(array) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut array.items {
                enums_in(items);
            }
            return;
        }
        _ => return,
    };
    for (name, property) in &mut object.properties {
        let values = match name.as_str() {
            "status" => TASK_STATUSES,
            "priority" => TASK_PRIORITIES,
            "role" => ROLES,
            _ => {
                enums_in(property);
                continue;
            }
        };
        if let RefOr::T(Schema::Object(property)) = property
            && is_string(&property.schema_type)
            && property.enum_values.is_none()
        {
            let mut values: Vec<Value> = values.iter().map(|v| json!(v)).collect();
            if matches!(&property.schema_type, utoipa::openapi::schema::SchemaType::Array(types) if types.contains(&Type::Null))
            {
                values.push(Value::Null);
            }
            property.enum_values = Some(values);
        }
    }
}

fn enums_in(schema: &mut RefOr<Schema>) {
    if let RefOr::T(schema) = schema {
        enums(schema);
    }
}

fn is_string(schema_type: &utoipa::openapi::schema::SchemaType) -> bool {
    use utoipa::openapi::schema::SchemaType;
    match schema_type {
        SchemaType::Type(Type::String) => true,
        SchemaType::Array(types) => types.contains(&Type::String),
        _ => false,
    }
}

impl Modify for TruthfulErrors {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(ERROR_SCHEMA.to_owned(), RefOr::T(error_schema()));
        components.schemas.values_mut().for_each(enums_in);
        for (path, item) in &mut openapi.paths.paths {
            for (changes, operation) in [
                (false, item.get.as_mut()),
                (true, item.put.as_mut()),
                (true, item.post.as_mut()),
                (true, item.delete.as_mut()),
                (true, item.patch.as_mut()),
            ] {
                if let Some(operation) = operation {
                    self.operation(path, changes, operation);
                    if let Some(body) = operation.request_body.as_mut() {
                        for content in body.content.values_mut() {
                            if let Some(schema) = content.schema.as_mut() {
                                enums_in(schema);
                            }
                        }
                    }
                    for response in operation.responses.responses.values_mut() {
                        if let RefOr::T(response) = response {
                            for content in response.content.values_mut() {
                                if let Some(schema) = content.schema.as_mut() {
                                    enums_in(schema);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};

    use super::*;

    #[test]
    fn every_operation_gets_every_error_status_and_status_and_role_become_enums() {
        // Given a document with one operation that lists only its success
        let operation = OperationBuilder::new()
            .response("200", ResponseBuilder::new().description("ok").build())
            .response("404", ResponseBuilder::new().description("gone").build())
            .build();
        let task = ObjectBuilder::new()
            .property("status", ObjectBuilder::new().schema_type(Type::String))
            .property("role", ObjectBuilder::new().schema_type(Type::String))
            .build();
        let mut openapi = OpenApiBuilder::new()
            .info(InfoBuilder::new().title("t").version("1").build())
            .paths(
                PathsBuilder::new().path("/tasks/{id}", PathItem::new(HttpMethod::Put, operation)),
            )
            .components(Some(ComponentsBuilder::new().schema("Task", task).build()))
            .build();
        // When the modifier runs
        TruthfulErrors::COMMANDS.modify(&mut openapi);
        // Then
        let document = serde_json::to_value(&openapi).expect("json");
        let put = &document["paths"]["/tasks/{id}"]["put"];
        for (status, _) in TruthfulErrors::COMMANDS.statuses {
            let response = &put["responses"][status.to_string()];
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "{status}: {response}"
            );
        }
        assert_eq!(put["responses"]["404"]["description"], "gone");
        assert_eq!(put["parameters"][0]["name"], "If-Match");
        let task = &document["components"]["schemas"]["Task"]["properties"];
        assert_eq!(task["status"]["enum"], json!(TASK_STATUSES));
        assert_eq!(task["role"]["enum"], json!(ROLES));
    }
}
