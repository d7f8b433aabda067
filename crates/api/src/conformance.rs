//! Checks an answer against the OpenAPI document, for tests: its route is
//! documented, its status is one the operation states, and its body
//! matches the schema stated for that status. The node's and the API's test
//! suites pass every answer they see through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

/// How an answer departs from the document.
#[derive(Debug, thiserror::Error)]
pub enum Nonconformance {
    #[error("{method} {path} answered {status} but is not in the document")]
    UndocumentedRoute { method: Method, path: String, status: StatusCode },
    #[error("{method} {template} answered {status}, a status the document does not state")]
    UndocumentedStatus { method: Method, template: String, status: StatusCode },
    #[error("{method} {template} answered {status} as {content_type}, which the document does not state")]
    UndocumentedContent { method: Method, template: String, status: StatusCode, content_type: String },
    #[error("{method} {template} answered {status} with a body its schema refuses: {errors}\n{body}")]
    BodyMismatch { method: Method, template: String, status: StatusCode, errors: String, body: Value },
}

/// Checks one answer. `path` may carry a query; `content_type` is the
/// answer's header, `body` its JSON (anything for other content types).
/// Paths outside the API (the web app's pages) pass.
pub fn check(
    method: &Method,
    path: &str,
    status: StatusCode,
    content_type: Option<&str>,
    body: &Value,
) -> Result<(), Nonconformance> {
    let path = path.split('?').next().unwrap_or_default();
    if !is_api(path) {
        return Ok(());
    }
    let doc = crate::openapi::document();
    let unknown_path = status == StatusCode::NOT_FOUND && body["error"] == "not_found";
    let Some(template) = template_of(doc, path) else {
        return match unknown_path {
            true => Ok(()),
            false => Err(Nonconformance::UndocumentedRoute { method: method.clone(), path: path.into(), status }),
        };
    };
    let operation = &doc["paths"][template][method.as_str().to_lowercase()];
    if !operation.is_object() {
        return match status == StatusCode::METHOD_NOT_ALLOWED {
            true => Ok(()),
            false => Err(Nonconformance::UndocumentedRoute { method: method.clone(), path: path.into(), status }),
        };
    }
    let range = format!("{}XX", status.as_u16() / 100);
    let responses = &operation["responses"];
    let (status_key, response) = [status.as_str(), range.as_str(), "default"]
        .into_iter()
        .map(|key| (key, &responses[key]))
        .find(|(_, response)| response.is_object())
        .ok_or_else(|| Nonconformance::UndocumentedStatus {
            method: method.clone(),
            template: template.into(),
            status,
        })?;
    let media = content_type.and_then(|c| c.split(';').next()).unwrap_or_default().trim();
    let content = &response["content"];
    if media.is_empty() && !content.is_object() {
        return Ok(());
    }
    if !content[media].is_object() {
        return Err(Nonconformance::UndocumentedContent {
            method: method.clone(),
            template: template.into(),
            status,
            content_type: media.into(),
        });
    }
    if media != "application/json" {
        return Ok(());
    }
    let key = format!("{method} {template} {status_key}");
    let validator = validator_for(&key, &content[media]["schema"]);
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(Nonconformance::BodyMismatch {
        method: method.clone(),
        template: template.into(),
        status,
        errors: errors.join("; "),
        body: body.clone(),
    })
}

/// What the document covers: the API, health and metrics.
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/healthz" || path == "/metrics"
}

/// The documented path `path` falls under: `{name}` takes any one segment,
/// and literal segments win over parameters.
fn template_of<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
    let segments: Vec<&str> = path.split('/').collect();
    let paths = doc["paths"].as_object()?;
    paths
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(part, segment)| part.starts_with('{') || part == segment);
            fits.then(|| (parts.iter().filter(|p| !p.starts_with('{')).count(), template.as_str()))
        })
        .max_by_key(|(literals, _)| *literals)
        .map(|(_, template)| template)
}

/// A compiled validator for `schema`, whose `$ref`s point into the
/// document's components. Compiled once per response.
fn validator_for(key: &str, schema: &Value) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let validator = cache.entry(key.to_owned()).or_insert_with(|| {
        let mut root = json!({ "$schema": "https://json-schema.org/draft/2020-12/schema" });
        root["components"] = crate::openapi::document()["components"].clone();
        for (name, value) in schema.as_object().into_iter().flatten() {
            root[name] = value.clone();
        }
        Arc::new(jsonschema::validator_for(&root).expect("the document's schemas compile"))
    });
    validator.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_off_its_schema_is_named() {
        let hold = json!({ "id": "seven", "listing": "room" });
        let refused = check(&Method::GET, "/api/v1/holds/7", StatusCode::OK, Some("application/json"), &hold);
        assert!(matches!(refused, Err(Nonconformance::BodyMismatch { .. })), "{refused:?}");
    }

    #[test]
    fn an_undocumented_route_or_status_is_named() {
        let any = json!({});
        let json = Some("application/json");
        let unknown = check(&Method::GET, "/api/v1/coupons", StatusCode::OK, json, &any);
        assert!(matches!(unknown, Err(Nonconformance::UndocumentedRoute { .. })), "{unknown:?}");
        let odd = check(&Method::GET, "/healthz", StatusCode::CREATED, json, &any);
        assert!(matches!(odd, Err(Nonconformance::UndocumentedStatus { .. })), "{odd:?}");
        let error = json!({ "error": "not_found", "message": "no hold 7" });
        assert!(check(&Method::GET, "/api/v1/holds/7?x=1", StatusCode::NOT_FOUND, json, &error).is_ok());
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let doc = crate::openapi::document();
        assert_eq!(template_of(doc, "/api/v1/group/members/3"), Some("/api/v1/group/members/{id}"));
        assert_eq!(template_of(doc, "/api/v1/listings/room/ari"), Some("/api/v1/listings/{id}/ari"));
    }
}
