//! The served OpenAPI document, and the committed `openapi.json` that
//! clients are generated from.

use std::path::Path;
use std::process::Command;

use actix_web::test::TestRequest;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

/// Every operation with the statuses its handler can answer.
const OPERATIONS: &[(&str, &str, &str, &[u16])] = &[
    (
        "/.well-known/jwks.json",
        "get",
        "getJsonWebKeySet",
        &[200, 400, 408, 429, 431],
    ),
    (
        "/.well-known/oauth-authorization-server",
        "get",
        "getAuthorizationServerMetadata",
        &[200, 400, 408, 429, 431],
    ),
    (
        "/org/create",
        "post",
        "createOrganization",
        &[201, 400, 408, 409, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/org/get",
        "get",
        "getOrganization",
        &[200, 400, 404, 408, 422, 429, 431, 500, 503],
    ),
    (
        "/org/update",
        "put",
        "updateOrganization",
        &[
            200, 400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/org/delete",
        "delete",
        "deleteOrganization",
        &[
            200, 400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/org/data",
        "post",
        "createDocument",
        &[201, 400, 401, 403, 408, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/org/data",
        "get",
        "listDocuments",
        &[200, 400, 401, 403, 408, 422, 429, 431, 500, 503],
    ),
    (
        "/org/data/{id}",
        "get",
        "getDocument",
        &[200, 304, 400, 401, 403, 404, 408, 412, 429, 431, 500, 503],
    ),
    (
        "/org/data/{id}",
        "put",
        "replaceDocument",
        &[
            200, 400, 401, 403, 404, 408, 412, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/org/data/{id}",
        "delete",
        "deleteDocument",
        &[204, 400, 401, 403, 404, 408, 412, 429, 431, 500, 503],
    ),
    (
        "/org/admins",
        "post",
        "addAdmin",
        &[
            201, 400, 401, 403, 408, 409, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/org/admins",
        "get",
        "listAdmins",
        &[200, 400, 401, 403, 408, 429, 431, 500, 503],
    ),
    (
        "/org/admins/{id}",
        "get",
        "getAdmin",
        &[200, 400, 401, 403, 404, 408, 429, 431, 500, 503],
    ),
    (
        "/org/admins/{id}",
        "patch",
        "changeAdminRole",
        &[
            200, 400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/org/admins/{id}",
        "delete",
        "removeAdmin",
        &[204, 400, 401, 403, 404, 408, 409, 429, 431, 500, 503],
    ),
    (
        "/org/audit",
        "get",
        "listAuditEvents",
        &[200, 400, 401, 403, 408, 422, 429, 431, 500, 503],
    ),
    (
        "/org/invitations",
        "post",
        "createInvitation",
        &[
            201, 400, 401, 403, 408, 409, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/org/invitations",
        "get",
        "listInvitations",
        &[200, 400, 401, 403, 408, 422, 429, 431, 500, 503],
    ),
    (
        "/org/invitations/{id}",
        "delete",
        "revokeInvitation",
        &[204, 400, 401, 403, 404, 408, 409, 429, 431, 500, 503],
    ),
    (
        "/org/invitations/{id}/resend",
        "post",
        "resendInvitation",
        &[200, 400, 401, 403, 404, 408, 409, 429, 431, 500, 503],
    ),
    (
        "/invitations/accept",
        "post",
        "acceptInvitation",
        &[
            201, 400, 403, 408, 409, 410, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/admin/login",
        "post",
        "adminLogin",
        &[200, 400, 401, 403, 408, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/admin/refresh",
        "post",
        "adminRefresh",
        &[200, 400, 401, 403, 408, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/admin/logout",
        "post",
        "adminLogout",
        &[204, 400, 408, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/admin/password-reset",
        "post",
        "requestPasswordReset",
        &[202, 400, 408, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/admin/password-reset/confirm",
        "post",
        "confirmPasswordReset",
        &[204, 400, 408, 410, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/admin/email-verification",
        "post",
        "requestEmailVerification",
        &[202, 400, 401, 403, 408, 429, 431, 500, 503],
    ),
    (
        "/admin/email-verification/confirm",
        "post",
        "confirmEmailVerification",
        &[204, 400, 408, 410, 413, 415, 422, 429, 431, 500, 503],
    ),
    (
        "/operator/keys",
        "get",
        "listOperatorKeys",
        &[200, 400, 401, 403, 408, 429, 431, 500, 503],
    ),
    (
        "/operator/keys",
        "post",
        "createOperatorKey",
        &[
            201, 400, 401, 403, 408, 409, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/operator/keys/{name}",
        "delete",
        "revokeOperatorKey",
        &[204, 400, 401, 403, 404, 408, 429, 431, 500, 503],
    ),
    (
        "/operator/organizations",
        "get",
        "operatorListOrganizations",
        &[200, 400, 401, 408, 422, 429, 431, 500, 503],
    ),
    (
        "/operator/organizations/{id}",
        "get",
        "operatorGetOrganization",
        &[200, 400, 401, 404, 408, 429, 431, 500, 503],
    ),
    (
        "/operator/organizations/{id}",
        "delete",
        "operatorDeleteOrganization",
        &[200, 400, 401, 403, 404, 408, 409, 429, 431, 500, 503],
    ),
    (
        "/operator/organizations/{id}/suspend",
        "post",
        "operatorSuspendOrganization",
        &[
            200, 400, 401, 403, 404, 408, 413, 415, 422, 429, 431, 500, 503,
        ],
    ),
    (
        "/operator/organizations/{id}/resume",
        "post",
        "operatorResumeOrganization",
        &[200, 400, 401, 403, 404, 408, 429, 431, 500, 503],
    ),
    (
        "/operator/audit",
        "get",
        "operatorListAuditEvents",
        &[200, 400, 401, 408, 422, 429, 431, 500, 503],
    ),
    (
        "/health/live",
        "get",
        "healthLive",
        &[200, 400, 408, 429, 431],
    ),
    (
        "/health/ready",
        "get",
        "healthReady",
        &[200, 400, 408, 429, 431, 503],
    ),
];

const PROTECTED: &[&str] = &[
    "updateOrganization",
    "deleteOrganization",
    "createDocument",
    "listDocuments",
    "getDocument",
    "replaceDocument",
    "deleteDocument",
    "addAdmin",
    "listAdmins",
    "getAdmin",
    "changeAdminRole",
    "removeAdmin",
    "listAuditEvents",
    "createInvitation",
    "listInvitations",
    "revokeInvitation",
    "resendInvitation",
    "requestEmailVerification",
];

/// The operator API's operations: operator keys only (`operator_key`).
const OPERATOR_PROTECTED: &[&str] = &[
    "listOperatorKeys",
    "createOperatorKey",
    "revokeOperatorKey",
    "operatorListOrganizations",
    "operatorGetOrganization",
    "operatorDeleteOrganization",
    "operatorSuspendOrganization",
    "operatorResumeOrganization",
    "operatorListAuditEvents",
];

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
    let mut expected_paths: Vec<_> = OPERATIONS.iter().map(|(path, ..)| *path).collect();
    expected_paths.dedup();
    assert_eq!(
        paths.len(),
        expected_paths.len(),
        "paths: {:?}",
        paths.keys()
    );
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
    let operator = &document["components"]["securitySchemes"]["operator_key"];
    assert_eq!(operator["type"], "http");
    assert_eq!(operator["scheme"], "bearer");
    assert!(operator["description"].as_str().unwrap().contains("osk_"));
    for (path, method, operation_id, _) in OPERATIONS {
        let security = &document["paths"][path][method]["security"];
        if PROTECTED.contains(operation_id) {
            assert_eq!(
                security,
                &serde_json::json!([{"bearer_auth": []}]),
                "{operation_id}"
            );
        } else if OPERATOR_PROTECTED.contains(operation_id) {
            assert_eq!(
                security,
                &serde_json::json!([{"operator_key": []}]),
                "{operation_id}"
            );
            let tags = &document["paths"][path][method]["tags"];
            assert_eq!(tags, &serde_json::json!(["operator"]), "{operation_id}");
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
        "RefreshTokenRequest",
        "HealthStatus",
        "DocumentData",
        "StoredDocument",
        "DocumentList",
        "AddAdminRequest",
        "ChangeAdminRequest",
        "AdminView",
        "AdminList",
        "AdminRole",
        "AuditLogPage",
        "AuditEventView",
        "AuditActionName",
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

/// How to bring `openapi.json` up to date.
const REGENERATE: &str = "cargo run -p orgsvc-api -- openapi > openapi.json";

#[test]
fn the_committed_openapi_json_is_what_orgsvc_openapi_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_orgsvc"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "orgsvc openapi failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read {} ({error}); generate it at the repository root with `{REGENERATE}`",
            path.display()
        )
    });
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(old, new)| old != new)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "openapi.json at the repository root differs from the document the code generates \
             (first difference at line {}): regenerate it at the repository root with \
             `{REGENERATE}` and commit it (generated clients are built from it)",
            line + 1
        );
    }
}

#[actix_web::test]
async fn every_organization_name_input_documents_the_same_pattern() {
    let document = served_document().await;
    let schemas = &document["components"]["schemas"];
    let patterns = [
        &schemas["CreateOrganizationRequest"]["properties"]["organization_name"]["pattern"],
        &schemas["UpdateOrganizationRequest"]["properties"]["organization_name"]["pattern"],
        &schemas["DeleteOrganizationRequest"]["properties"]["organization_name"]["pattern"],
        &document["paths"]["/org/get"]["get"]["parameters"][0]["schema"]["pattern"],
        &document["paths"]["/org/delete"]["delete"]["parameters"][0]["schema"]["pattern"],
    ];
    let first = patterns[0].as_str().unwrap();
    assert!(
        first.contains("[A-Za-z0-9][A-Za-z0-9 _-]{0,62}[A-Za-z0-9]"),
        "{first}"
    );
    for pattern in patterns {
        assert_eq!(pattern.as_str(), Some(first));
    }
}

#[actix_web::test]
async fn the_optional_delete_body_is_an_object_not_null() {
    // Generated clients send an optional body only when given one; a
    // nullable schema would make some of them send `null`.
    let document = served_document().await;
    let body = &document["paths"]["/org/delete"]["delete"]["requestBody"];
    assert!(
        body["required"].is_null() || body["required"] == false,
        "{body}"
    );
    assert_eq!(
        body["content"]["application/json"]["schema"],
        serde_json::json!({"$ref": "#/components/schemas/DeleteOrganizationRequest"})
    );
}
