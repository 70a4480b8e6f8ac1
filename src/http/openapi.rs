//! The error answers every operation can give, added to the OpenAPI document in one place so
//! no handler's annotation can forget one: the route layer answers 401/403 before a handler
//! runs, the extractors 400 (a malformed path, query or body) and 413 (a body over the limit),
//! and any request can meet 500 (a failure the server log explains) or 503 (a component not
//! ready). Each is the `{code, message}` [`ErrorBody`](super::ErrorBody).

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

/// Adds the common error responses to every operation that does not document them itself.
pub struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_errors(operation);
            }
        }
    }
}

fn add_common_errors(operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let params = operation.parameters.as_deref().unwrap_or_default();
    let in_path = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let in_query = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let body = operation.request_body.is_some();
    let mut errors = Vec::new();
    if secured {
        errors.push(("401", "no token, or an unknown or revoked one"));
        errors.push(("403", "the caller's role may not call this"));
        errors.push((
            "429",
            "too many failed sign-ins from the caller's address: try again after Retry-After",
        ));
    }
    if in_path || in_query || body {
        errors.push(("400", "a malformed path, query or body"));
    }
    if in_path {
        errors.push(("404", "no such item in the caller's scope"));
    }
    if body {
        errors.push(("413", "the body is larger than the server's limit"));
    }
    errors.push(("500", "an internal failure; the server log has the details"));
    errors.push(("503", "a component the request needs is not ready"));
    for (status, description) in errors {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}
