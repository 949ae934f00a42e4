//! Several admins per organization with the roles `owner` and `admin`:
//! adding, listing, changing the role of and removing admins (owners only),
//! the owner-only organization operations, and revocation.

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::helpers::{TestApp, TestResponse, PASSWORD};

store_suite!(
    the_creator_of_an_organization_is_its_first_owner,
    owner_adds_lists_gets_and_removes_admins,
    the_role_of_a_new_admin_defaults_to_admin,
    an_added_admin_logs_in_and_uses_the_organizations_data,
    add_returns_409_when_the_email_is_taken_in_any_organization,
    an_admin_gets_403_on_every_owner_only_operation,
    an_admin_may_change_its_own_credentials,
    the_last_owner_cannot_be_removed_or_demoted,
    an_owner_may_leave_once_another_owner_remains,
    a_role_change_applies_to_existing_tokens_at_once,
    setting_the_same_role_changes_nothing,
    removing_an_admin_revokes_its_token_at_once,
    deleting_the_organization_revokes_every_admins_token,
    other_organizations_admins_and_malformed_ids_are_not_found,
);

store_independent_suite!(
    add_returns_422_listing_every_invalid_field,
    add_returns_400_415_and_422_for_unusable_bodies,
    change_role_returns_422_for_a_missing_or_invalid_role,
    admin_operations_require_a_token,
    admin_resources_answer_other_methods_with_405,
);

/// Another password, for admins added by the tests.
pub const OTHER_PASSWORD: &str = "another long passphrase";

/// `request` with `Authorization: Bearer <token>`.
pub fn bearer(request: TestRequest, token: &str) -> TestRequest {
    request.insert_header(("Authorization", format!("Bearer {token}")))
}

impl TestApp {
    /// `POST /org/admins` with `token`; `role` is left out when `None`.
    pub async fn add_admin(&self, token: &str, email: &str, role: Option<&str>) -> TestResponse {
        let mut body = json!({"email": email, "password": OTHER_PASSWORD});
        if let Some(role) = role {
            body["role"] = json!(role);
        }
        self.send(bearer(TestRequest::post().uri("/org/admins"), token).set_json(body))
            .await
    }

    /// Adds an admin with `role` and logs it in; returns its id and token.
    pub async fn add_admin_and_login(
        &self,
        token: &str,
        email: &str,
        role: &str,
    ) -> (String, String) {
        let body = self
            .add_admin(token, email, Some(role))
            .await
            .expect(201, None);
        let id = body["id"].as_str().unwrap().to_owned();
        (id, self.token(email, OTHER_PASSWORD).await)
    }

    /// `GET /org/admins` with `token`.
    pub async fn list_admins(&self, token: &str) -> TestResponse {
        self.send(bearer(TestRequest::get().uri("/org/admins"), token))
            .await
    }

    /// `PATCH /org/admins/{id}` with `token`.
    pub async fn change_role(&self, token: &str, id: &str, role: &str) -> TestResponse {
        self.send(
            bearer(
                TestRequest::patch().uri(&format!("/org/admins/{id}")),
                token,
            )
            .set_json(json!({"role": role})),
        )
        .await
    }

    /// `DELETE /org/admins/{id}` with `token`.
    pub async fn remove_admin(&self, token: &str, id: &str) -> TestResponse {
        self.send(bearer(
            TestRequest::delete().uri(&format!("/org/admins/{id}")),
            token,
        ))
        .await
    }

    /// Whether `token` is still accepted (`GET /org/data`), asserting that a
    /// refusal is a 401 `invalid_token`.
    pub async fn token_works(&self, token: &str) -> bool {
        let response = self
            .send(bearer(TestRequest::get().uri("/org/data"), token))
            .await;
        if response.status.is_success() {
            return true;
        }
        response.expect(401, Some("invalid_token"));
        false
    }
}

/// The `(email, role)` of every admin listed, in order.
fn emails_and_roles(list: &Value) -> Vec<(String, String)> {
    list["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|admin| {
            (
                admin["email"].as_str().unwrap().to_owned(),
                admin["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(email: &str, role: &str) -> (String, String) {
    (email.to_owned(), role.to_owned())
}

async fn the_creator_of_an_organization_is_its_first_owner(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let token = app.token("admin@acme.example", PASSWORD).await;
    let list = app.list_admins(&token).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&list),
        [pair("admin@acme.example", "owner")]
    );
    assert_eq!(list["admins"][0]["id"], created["admin_id"]);
}

async fn owner_adds_lists_gets_and_removes_admins(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let response = app
        .add_admin(&token, "Ops@Acme.example", Some("admin"))
        .await;
    let added = response.expect(201, None);
    let id = added["id"].as_str().unwrap();
    assert_eq!(
        response.header("location"),
        Some(format!("/org/admins/{id}").as_str())
    );
    assert_eq!(added["email"], "ops@acme.example");
    assert_eq!(added["role"], "admin");
    let mut keys: Vec<_> = added.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "email_verified",
            "id",
            "role",
            "updated_at"
        ]
    );
    assert_eq!(added["email_verified"], false);

    app.add_admin(&token, "boss@acme.example", Some("owner"))
        .await
        .expect(201, None);
    let list = app.list_admins(&token).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&list),
        [
            pair("admin@acme.example", "owner"),
            pair("ops@acme.example", "admin"),
            pair("boss@acme.example", "owner"),
        ]
    );
    let fetched = app
        .send(bearer(
            TestRequest::get().uri(&format!("/org/admins/{id}")),
            &token,
        ))
        .await
        .expect(200, None);
    assert_eq!(fetched, added);

    app.remove_admin(&token, id).await.expect(204, None);
    let list = app.list_admins(&token).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&list),
        [
            pair("admin@acme.example", "owner"),
            pair("boss@acme.example", "owner"),
        ]
    );
    app.send(bearer(
        TestRequest::get().uri(&format!("/org/admins/{id}")),
        &token,
    ))
    .await
    .expect(404, Some("admin_not_found"));
    app.remove_admin(&token, id)
        .await
        .expect(404, Some("admin_not_found"));
    // The email is free again.
    app.add_admin(&token, "ops@acme.example", None)
        .await
        .expect(201, None);
}

async fn the_role_of_a_new_admin_defaults_to_admin(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let added = app
        .add_admin(&token, "a@acme.example", None)
        .await
        .expect(201, None);
    assert_eq!(added["role"], "admin");
    let added = app
        .send(
            bearer(TestRequest::post().uri("/org/admins"), &token).set_json(
                json!({"email": "b@acme.example", "password": OTHER_PASSWORD, "role": null}),
            ),
        )
        .await
        .expect(201, None);
    assert_eq!(added["role"], "admin");
}

async fn an_added_admin_logs_in_and_uses_the_organizations_data(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let (_, admin) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    let stored = app
        .send(bearer(TestRequest::post().uri("/org/data"), &admin).set_json(json!({"k": 1})))
        .await
        .expect(201, None);
    let listed = app
        .send(bearer(TestRequest::get().uri("/org/data"), &owner))
        .await
        .expect(200, None);
    assert_eq!(listed["items"][0]["id"], stored["id"]);
    // A wrong password still fails for the added admin.
    app.login("ops@acme.example", PASSWORD)
        .await
        .expect(401, Some("invalid_credentials"));
}

async fn add_returns_409_when_the_email_is_taken_in_any_organization(app: TestApp) {
    app.create_org("Globex", "admin@globex.example")
        .await
        .expect(201, None);
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for taken in ["ADMIN@acme.example", "admin@globex.example"] {
        app.add_admin(&token, taken, Some("admin"))
            .await
            .expect(409, Some("email_taken"));
    }
    app.add_admin(&token, "ops@acme.example", None)
        .await
        .expect(201, None);
    app.add_admin(&token, "OPS@acme.example", Some("owner"))
        .await
        .expect(409, Some("email_taken"));
    let list = app.list_admins(&token).await.expect(200, None);
    assert_eq!(list["admins"].as_array().unwrap().len(), 2, "{list}");
}

async fn add_returns_422_listing_every_invalid_field(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let fields = |body: Value| -> Vec<(String, String)> {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| {
                (
                    error["field"].as_str().unwrap().to_owned(),
                    error["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let add = |body: Value| {
        app.send(bearer(TestRequest::post().uri("/org/admins"), &token).set_json(body))
    };
    let invalid = add(json!({"email": "nope", "password": "short", "role": "root"}))
        .await
        .expect(422, Some("validation_failed"));
    let invalid = fields(invalid);
    let names: Vec<_> = invalid.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(names, ["email", "password", "role"]);
    assert_eq!(invalid[2].1, "must be \"owner\" or \"admin\"");
    let missing = add(json!({})).await.expect(422, Some("validation_failed"));
    assert_eq!(
        fields(missing),
        [
            pair("email", "is required"),
            pair("password", "is required")
        ]
    );
    let wrong_types = add(json!({"email": 1, "password": PASSWORD, "role": ["owner"]}))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(
        fields(wrong_types),
        [
            pair("email", "must be a string"),
            pair("role", "must be a string")
        ]
    );
    let list = app.list_admins(&token).await.expect(200, None);
    assert_eq!(list["admins"].as_array().unwrap().len(), 1, "{list}");
}

async fn add_returns_400_415_and_422_for_unusable_bodies(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    app.send(
        bearer(TestRequest::post().uri("/org/admins"), &token)
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"email\": "),
    )
    .await
    .expect(400, Some("malformed_json"));
    app.send(
        bearer(TestRequest::post().uri("/org/admins"), &token)
            .insert_header(("content-type", "text/plain"))
            .set_payload("email=a@b.example"),
    )
    .await
    .expect(415, Some("unsupported_media_type"));
    app.send(bearer(TestRequest::post().uri("/org/admins"), &token).set_json(json!([1])))
        .await
        .expect(422, Some("validation_failed"));
}

async fn an_admin_gets_403_on_every_owner_only_operation(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let (admin_id, admin) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    let owner_id = app.list_admins(&owner).await.expect(200, None)["admins"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let requests = [
        TestRequest::post()
            .uri("/org/admins")
            .set_json(json!({"email": "x@acme.example", "password": PASSWORD, "role": "owner"})),
        TestRequest::get().uri("/org/admins"),
        TestRequest::get().uri(&format!("/org/admins/{owner_id}")),
        TestRequest::patch()
            .uri(&format!("/org/admins/{admin_id}"))
            .set_json(json!({"role": "owner"})),
        TestRequest::patch()
            .uri(&format!("/org/admins/{owner_id}"))
            .set_json(json!({"role": "admin"})),
        TestRequest::delete().uri(&format!("/org/admins/{owner_id}")),
        TestRequest::get().uri("/org/audit"),
        TestRequest::put()
            .uri("/org/update")
            .set_json(json!({"organization_name": "Acme Renamed"})),
        // A respelling is a change of name too.
        TestRequest::put()
            .uri("/org/update")
            .set_json(json!({"organization_name": "ACME"})),
        TestRequest::delete().uri("/org/delete?organization_name=Acme"),
    ];
    for request in requests {
        let response = app.send(bearer(request, &admin)).await;
        let body = response.expect(403, Some("owner_required"));
        assert_eq!(body["type"], "urn:orgsvc:problem:owner_required");
    }
    // Nothing changed.
    let metadata = app.get_org("Acme").await.expect(200, None);
    assert_eq!(metadata["organization_name"], "Acme");
    let list = app.list_admins(&owner).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&list),
        [
            pair("admin@acme.example", "owner"),
            pair("ops@acme.example", "admin"),
        ]
    );
    assert!(app.token_works(&admin).await);
}

async fn an_admin_may_change_its_own_credentials(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let (admin_id, admin) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    let body = app
        .update_org(
            &admin,
            json!({"organization_name": "Acme", "email": "Ops2@acme.example", "password": "a brand new passphrase"}),
        )
        .await
        .expect(200, None);
    assert_eq!(body["organization_name"], "Acme");
    // The password change revoked the admin's earlier token, not the owner's.
    assert!(!app.token_works(&admin).await);
    assert!(app.token_works(&owner).await);
    app.login("ops@acme.example", OTHER_PASSWORD)
        .await
        .expect(401, Some("invalid_credentials"));
    let admin = app
        .token("ops2@acme.example", "a brand new passphrase")
        .await;
    assert!(app.token_works(&admin).await);
    // Only the caller's own credentials changed.
    app.token("admin@acme.example", PASSWORD).await;
    let list = app.list_admins(&owner).await.expect(200, None);
    assert_eq!(list["admins"][1]["id"], admin_id.as_str());
    assert_eq!(list["admins"][1]["email"], "ops2@acme.example");
    assert_eq!(list["admins"][1]["role"], "admin");
}

async fn the_last_owner_cannot_be_removed_or_demoted(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let (admin_id, _) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    let owner_id = app.list_admins(&owner).await.expect(200, None)["admins"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = app
        .remove_admin(&owner, &owner_id)
        .await
        .expect(409, Some("last_owner"));
    assert!(body["detail"].as_str().unwrap().contains("last owner"));
    app.change_role(&owner, &owner_id, "admin")
        .await
        .expect(409, Some("last_owner"));
    // Admins (not owners) are removable; the owner is still the owner.
    let list = app.list_admins(&owner).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&list),
        [
            pair("admin@acme.example", "owner"),
            pair("ops@acme.example", "admin"),
        ]
    );
    // With a second owner, the first may be demoted; the second is then the last.
    app.change_role(&owner, &admin_id, "owner")
        .await
        .expect(200, None);
    let demoted = app
        .change_role(&owner, &owner_id, "admin")
        .await
        .expect(200, None);
    assert_eq!(demoted["role"], "admin");
    let boss = app.token("ops@acme.example", OTHER_PASSWORD).await;
    app.change_role(&boss, &admin_id, "admin")
        .await
        .expect(409, Some("last_owner"));
    app.remove_admin(&boss, &admin_id)
        .await
        .expect(409, Some("last_owner"));
    assert!(app.token_works(&boss).await);
}

async fn an_owner_may_leave_once_another_owner_remains(app: TestApp) {
    let created = app
        .create_org("Acme", "admin@acme.example")
        .await
        .expect(201, None);
    let founder = app.token("admin@acme.example", PASSWORD).await;
    let founder_id = created["admin_id"].as_str().unwrap();
    let (successor_id, successor) = app
        .add_admin_and_login(&founder, "boss@acme.example", "owner")
        .await;
    app.remove_admin(&founder, founder_id)
        .await
        .expect(204, None);
    assert!(!app.token_works(&founder).await);
    // The remaining owner is now the primary admin, with every owner right.
    let metadata = app.get_org("Acme").await.expect(200, None);
    assert_eq!(metadata["admin_id"], successor_id.as_str());
    let list = app.list_admins(&successor).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&list),
        [pair("boss@acme.example", "owner")]
    );
    app.update_org(&successor, json!({"organization_name": "Acme Two"}))
        .await
        .expect(200, None);
}

async fn a_role_change_applies_to_existing_tokens_at_once(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let (id, token) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    app.list_admins(&token)
        .await
        .expect(403, Some("owner_required"));
    let promoted = app
        .change_role(&owner, &id, "owner")
        .await
        .expect(200, None);
    assert_eq!(promoted["role"], "owner");
    assert_eq!(promoted["id"], id.as_str());
    app.list_admins(&token).await.expect(200, None);
    app.change_role(&owner, &id, "admin")
        .await
        .expect(200, None);
    app.list_admins(&token)
        .await
        .expect(403, Some("owner_required"));
    // A role change is not a credential change: the token stays valid.
    assert!(app.token_works(&token).await);
}

async fn setting_the_same_role_changes_nothing(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let added = app
        .add_admin(&owner, "ops@acme.example", Some("admin"))
        .await
        .expect(201, None);
    let id = added["id"].as_str().unwrap();
    let same = app.change_role(&owner, id, "admin").await.expect(200, None);
    assert_eq!(same, added);
}

async fn change_role_returns_422_for_a_missing_or_invalid_role(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let added = app
        .add_admin(&owner, "ops@acme.example", Some("admin"))
        .await
        .expect(201, None);
    let uri = format!("/org/admins/{}", added["id"].as_str().unwrap());
    for (body, message) in [
        (json!({}), "is required"),
        (json!({"role": null}), "is required"),
        (json!({"role": "Owner"}), "must be \"owner\" or \"admin\""),
        (json!({"role": 1}), "must be a string"),
    ] {
        let problem = app
            .send(bearer(TestRequest::patch().uri(&uri), &owner).set_json(body))
            .await
            .expect(422, Some("validation_failed"));
        assert_eq!(problem["errors"][0]["field"], "role");
        assert_eq!(problem["errors"][0]["message"], message);
    }
    let unchanged = app
        .send(bearer(TestRequest::get().uri(&uri), &owner))
        .await
        .expect(200, None);
    assert_eq!(unchanged["role"], "admin");
}

async fn removing_an_admin_revokes_its_token_at_once(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let (id, admin) = app
        .add_admin_and_login(&owner, "ops@acme.example", "owner")
        .await;
    assert!(app.token_works(&admin).await);
    app.remove_admin(&owner, &id).await.expect(204, None);
    let refused = app
        .send(bearer(TestRequest::get().uri("/org/data"), &admin))
        .await;
    refused.expect(401, Some("invalid_token"));
    assert_eq!(
        refused.header("www-authenticate"),
        Some(r#"Bearer realm="orgsvc", error="invalid_token""#)
    );
    app.list_admins(&admin)
        .await
        .expect(401, Some("invalid_token"));
    app.login("ops@acme.example", OTHER_PASSWORD)
        .await
        .expect(401, Some("invalid_credentials"));
    assert!(app.token_works(&owner).await);
}

async fn deleting_the_organization_revokes_every_admins_token(app: TestApp) {
    let owner = app.create_and_login("Acme", "admin@acme.example").await;
    let (_, second_owner) = app
        .add_admin_and_login(&owner, "boss@acme.example", "owner")
        .await;
    let (_, admin) = app
        .add_admin_and_login(&owner, "ops@acme.example", "admin")
        .await;
    let other = app.create_and_login("Globex", "admin@globex.example").await;
    app.delete_org(&second_owner, "Acme")
        .await
        .expect(200, None);
    for token in [&owner, &second_owner, &admin] {
        assert!(!app.token_works(token).await);
    }
    for email in [
        "admin@acme.example",
        "boss@acme.example",
        "ops@acme.example",
    ] {
        let password = if email == "admin@acme.example" {
            PASSWORD
        } else {
            OTHER_PASSWORD
        };
        app.login(email, password)
            .await
            .expect(401, Some("invalid_credentials"));
    }
    assert!(app.token_works(&other).await);
}

async fn other_organizations_admins_and_malformed_ids_are_not_found(app: TestApp) {
    let acme = app.create_and_login("Acme", "admin@acme.example").await;
    let globex = app.create_and_login("Globex", "admin@globex.example").await;
    let (foreign_id, foreign) = app
        .add_admin_and_login(&globex, "ops@globex.example", "admin")
        .await;
    for id in [
        foreign_id.as_str(),
        "not-a-uuid",
        "01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f",
    ] {
        let uri = format!("/org/admins/{id}");
        app.send(bearer(TestRequest::get().uri(&uri), &acme))
            .await
            .expect(404, Some("admin_not_found"));
        app.send(bearer(TestRequest::patch().uri(&uri), &acme).set_json(json!({"role": "owner"})))
            .await
            .expect(404, Some("admin_not_found"));
        app.remove_admin(&acme, id)
            .await
            .expect(404, Some("admin_not_found"));
    }
    // Globex's admin is untouched and still works.
    assert!(app.token_works(&foreign).await);
    let list = app.list_admins(&globex).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&list),
        [
            pair("admin@globex.example", "owner"),
            pair("ops@globex.example", "admin"),
        ]
    );
    let own = app.list_admins(&acme).await.expect(200, None);
    assert_eq!(
        emails_and_roles(&own),
        [pair("admin@acme.example", "owner")]
    );
}

async fn admin_operations_require_a_token(app: TestApp) {
    let id = "01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f";
    let requests = [
        TestRequest::post()
            .uri("/org/admins")
            .set_json(json!({"email": "x@acme.example", "password": PASSWORD})),
        TestRequest::get().uri("/org/admins"),
        TestRequest::get().uri(&format!("/org/admins/{id}")),
        TestRequest::patch()
            .uri(&format!("/org/admins/{id}"))
            .set_json(json!({"role": "owner"})),
        TestRequest::delete().uri(&format!("/org/admins/{id}")),
    ];
    for request in requests {
        let response = app.send(request).await;
        response.expect(401, Some("missing_token"));
        assert_eq!(
            response.header("www-authenticate"),
            Some(r#"Bearer realm="orgsvc""#)
        );
    }
    app.send(bearer(TestRequest::get().uri("/org/admins"), "garbage"))
        .await
        .expect(401, Some("invalid_token"));
}

async fn admin_resources_answer_other_methods_with_405(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let response = app
        .send(bearer(TestRequest::put().uri("/org/admins"), &token))
        .await;
    response.expect(405, Some("method_not_allowed"));
    assert_eq!(response.header("allow"), Some("GET, HEAD, POST"));
    let response = app
        .send(bearer(
            TestRequest::put().uri("/org/admins/01936f3e-8a4b-7c5d-9e6f-3a4b5c6d7e8f"),
            &token,
        ))
        .await;
    response.expect(405, Some("method_not_allowed"));
    assert_eq!(response.header("allow"), Some("GET, HEAD, PATCH, DELETE"));
    let response = app
        .send(bearer(TestRequest::post().uri("/org/audit"), &token))
        .await;
    response.expect(405, Some("method_not_allowed"));
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}
