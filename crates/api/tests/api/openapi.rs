//! The served OpenAPI document.

use actix_web::test::TestRequest;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

/// Every operation with the statuses its handler can answer.
const OPERATIONS: &[(&str, &str, &str, &[u16])] = &[
    (
        "/org/create",
        "post",
        "createOrganization",
        &[201, 400, 409, 413, 415, 422, 500],
    ),
    ("/org/get", "get", "getOrganization", &[200, 404, 422, 500]),
    (
        "/org/update",
        "put",
        "updateOrganization",
        &[200, 400, 401, 404, 409, 413, 415, 422, 500],
    ),
    (
        "/org/delete",
        "delete",
        "deleteOrganization",
        &[200, 400, 401, 403, 404, 409, 413, 415, 422, 500],
    ),
    (
        "/admin/login",
        "post",
        "adminLogin",
        &[200, 400, 401, 413, 415, 422, 500],
    ),
    ("/health/live", "get", "healthLive", &[200]),
    ("/health/ready", "get", "healthReady", &[200, 503]),
];

const PROTECTED: &[&str] = &["updateOrganization", "deleteOrganization"];

async fn served_document() -> Value {
    let app = TestApp::spawn(Backend::Embedded).await;
    app.send(TestRequest::get().uri("/openapi.json"))
        .await
        .expect(200, None)
}

#[actix_web::test]
async fn the_served_document_is_openapi_3_1_with_every_operation() {
    let document = served_document().await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.len(), OPERATIONS.len(), "paths: {:?}", paths.keys());
    for (path, method, operation_id, _) in OPERATIONS {
        let operation = &document["paths"][path][method];
        assert_eq!(operation["operationId"], *operation_id, "{method} {path}");
        assert!(
            operation["summary"].is_string(),
            "{operation_id} has no summary"
        );
        assert!(
            operation["description"].is_string(),
            "{operation_id} has no description"
        );
        assert!(operation["tags"]
            .as_array()
            .is_some_and(|tags| !tags.is_empty()));
    }
}

#[actix_web::test]
async fn every_status_an_operation_can_answer_is_documented_with_the_problem_schema() {
    let document = served_document().await;
    for (path, method, operation_id, statuses) in OPERATIONS {
        let responses = document["paths"][path][method]["responses"]
            .as_object()
            .unwrap();
        let mut documented: Vec<u16> = responses.keys().map(|s| s.parse().unwrap()).collect();
        documented.sort_unstable();
        assert_eq!(documented, *statuses, "{operation_id}");
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let name = response["$ref"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap();
                let component = &document["components"]["responses"][name];
                let content = &component["content"]["application/problem+json"];
                assert_eq!(
                    content["schema"]["$ref"], "#/components/schemas/Problem",
                    "{name}"
                );
                let examples = content["examples"].as_object().unwrap();
                assert!(!examples.is_empty(), "{name} has no example");
                for example in examples.values() {
                    assert_eq!(
                        example["value"]["status"],
                        status.parse::<u16>().unwrap(),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[actix_web::test]
async fn protected_operations_require_the_bearer_scheme() {
    let document = served_document().await;
    let scheme = &document["components"]["securitySchemes"]["bearer_auth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    for (path, method, operation_id, _) in OPERATIONS {
        let security = &document["paths"][path][method]["security"];
        if PROTECTED.contains(operation_id) {
            assert_eq!(
                security[0]["bearer_auth"],
                serde_json::json!([]),
                "{operation_id}"
            );
        } else {
            assert!(security.is_null(), "{operation_id} should be public");
        }
    }
}

#[actix_web::test]
async fn request_and_response_schemas_carry_examples() {
    let document = served_document().await;
    for schema in [
        "CreateOrganizationRequest",
        "CreatedOrganization",
        "OrganizationMetadata",
        "UpdateOrganizationRequest",
        "DeleteOrganizationRequest",
        "DeletedOrganization",
        "LoginRequest",
        "AccessToken",
        "HealthStatus",
        "Problem",
    ] {
        let schema_object = &document["components"]["schemas"][schema];
        assert!(schema_object.is_object(), "no schema {schema}");
        assert!(
            !schema_object["example"].is_null() || !schema_object["examples"].is_null(),
            "{schema} has no example"
        );
    }
}
