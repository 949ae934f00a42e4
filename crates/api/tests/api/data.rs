//! The tenant data API: `/org/data` on the caller's organization.

use std::cell::Cell;
use std::collections::HashSet;
use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::helpers::{encode, TestApp, TestResponse};

store_suite!(
    create_returns_201_with_location_and_etag_and_round_trips_any_json_unchanged,
    documents_up_to_the_size_limit_are_accepted_and_larger_ones_get_413,
    listing_pages_through_every_document_once_in_creation_order,
    listing_filters_on_top_level_field_equality,
    get_returns_404_for_unknown_and_malformed_ids,
    get_answers_304_when_if_none_match_names_the_current_etag,
    replace_honours_if_match_and_answers_412_with_the_current_etag,
    replace_without_if_match_is_unconditional_and_keeps_id_and_creation_time,
    replace_of_an_unknown_document_is_404_and_invalid_bodies_are_422,
    delete_returns_204_honours_if_match_and_then_the_document_is_gone,
    another_organization_can_neither_read_list_change_nor_delete_documents,
    documents_follow_a_rename_with_the_same_ids_and_content,
    writes_racing_renames_are_applied_in_the_new_collection_or_refused_never_lost,
    deleting_the_organization_deletes_its_documents,
    writes_with_if_none_match_naming_the_document_answer_412_and_change_nothing,
    if_match_is_evaluated_before_if_none_match_and_get_honours_if_match,
);

store_independent_suite!(
    create_refuses_field_names_mongodb_would_misread_with_their_json_pointer,
    create_refuses_non_objects_oversized_integers_and_deep_nesting,
    create_refuses_numbers_beyond_64_bits_however_they_are_written,
    create_refuses_malformed_json_and_other_media_types,
    listing_returns_422_for_invalid_limit_cursor_filter_or_parameter,
    every_data_endpoint_requires_a_token_before_looking_at_the_request,
    data_resources_answer_other_methods_with_405,
);

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// `POST /org/data` with a JSON value.
async fn create(app: &TestApp, token: &str, document: &Value) -> TestResponse {
    app.send(
        TestRequest::post()
            .uri("/org/data")
            .insert_header(bearer(token))
            .set_json(document),
    )
    .await
}

/// `POST /org/data` with a raw JSON text.
async fn create_raw(app: &TestApp, token: &str, text: &str) -> TestResponse {
    app.send(
        TestRequest::post()
            .uri("/org/data")
            .insert_header(bearer(token))
            .insert_header(ContentType::json())
            .set_payload(text.to_owned()),
    )
    .await
}

/// Creates a document; returns its id.
async fn create_ok(app: &TestApp, token: &str, document: Value) -> String {
    let body = create(app, token, &document).await.expect(201, None);
    body["id"].as_str().unwrap().to_owned()
}

async fn get(app: &TestApp, token: &str, id: &str) -> TestResponse {
    app.send(
        TestRequest::get()
            .uri(&format!("/org/data/{id}"))
            .insert_header(bearer(token)),
    )
    .await
}

async fn replace(
    app: &TestApp,
    token: &str,
    id: &str,
    if_match: Option<&str>,
    document: &Value,
) -> TestResponse {
    let mut request = TestRequest::put()
        .uri(&format!("/org/data/{id}"))
        .insert_header(bearer(token))
        .set_json(document);
    if let Some(tags) = if_match {
        request = request.insert_header(("If-Match", tags.to_owned()));
    }
    app.send(request).await
}

async fn delete(app: &TestApp, token: &str, id: &str, if_match: Option<&str>) -> TestResponse {
    let mut request = TestRequest::delete()
        .uri(&format!("/org/data/{id}"))
        .insert_header(bearer(token));
    if let Some(tags) = if_match {
        request = request.insert_header(("If-Match", tags.to_owned()));
    }
    app.send(request).await
}

/// `GET /org/data?<query>`.
async fn list(app: &TestApp, token: &str, query: &str) -> TestResponse {
    app.send(
        TestRequest::get()
            .uri(&format!("/org/data?{query}"))
            .insert_header(bearer(token)),
    )
    .await
}

/// Every document of the caller's organization (optionally filtered),
/// following `next_cursor`; checks that no document is listed twice.
async fn list_all(app: &TestApp, token: &str, filter: Option<&Value>) -> Vec<Value> {
    let filter = filter.map(|f| format!("&filter={}", encode(&f.to_string())));
    let mut items = Vec::new();
    let mut after = String::new();
    loop {
        let query = format!("limit=7{after}{}", filter.as_deref().unwrap_or(""));
        let page = list(app, token, &query).await.expect(200, None);
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => after = format!("&after={}", encode(cursor)),
            None => break,
        }
    }
    let ids: HashSet<_> = items.iter().map(|item| item["id"].clone()).collect();
    assert_eq!(ids.len(), items.len(), "a document was listed twice");
    items
}

fn ids_of(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The `field`s of a 422.
fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"))
        .iter()
        .map(|error| error["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn create_returns_201_with_location_and_etag_and_round_trips_any_json_unchanged(
    app: TestApp,
) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let document = json!({
        "name": "Zoë Ünïcødé 🚀 日本語 \"quoted\" \\ back\nslash",
        "zulu": 1,
        "alpha": 2,
        "float_one": 1.0,
        "float": 0.1,
        "tiny": -2.5e-7,
        // The largest magnitudes are bounded by the 64-bit range (see
        // create_refuses_numbers_beyond_64_bits_however_they_are_written).
        "huge": 9.2e18,
        "max": i64::MAX,
        "min": i64::MIN,
        "zero": 0,
        "negative": -42,
        "truth": true,
        "lie": false,
        "nothing": null,
        "empty_object": {},
        "empty_array": [],
        "_id": "a client field named _id is just data",
        "id": 7,
        "nested": {"list": [1, "two", null, true, {"deep": [[], {"x": [1.5, {"y": "ÿ"}]}]}]},
        "key with spaces/and~tilde": "ok",
        "price$": "only a leading $ is refused",
    });
    let response = create(&app, &token, &document).await;
    let created = response.expect(201, None);
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        response.header("location"),
        Some(format!("/org/data/{id}").as_str())
    );
    assert_eq!(response.header("etag"), Some("\"1\""));
    assert_eq!(created["revision"], 1);
    assert_eq!(created["created_at"], created["updated_at"]);
    assert_eq!(created["data"], document);
    let mut keys: Vec<_> = created.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "data", "id", "revision", "updated_at"]);

    let response = get(&app, &token, id).await;
    let found = response.expect(200, None);
    assert_eq!(response.header("etag"), Some("\"1\""));
    assert_eq!(found, created);
    // Same text: same field order, `1.0` stays a float, big integers exact.
    assert_eq!(found["data"].to_string(), document.to_string());
    assert!(found["data"]["float_one"].is_f64());
    assert_eq!(found["data"]["max"].as_i64(), Some(i64::MAX));
    assert_eq!(found["data"]["min"].as_i64(), Some(i64::MIN));

    let listed = list_all(&app, &token, None).await;
    assert_eq!(listed, [created]);
}

async fn create_refuses_field_names_mongodb_would_misread_with_their_json_pointer(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for (text, pointer) in [
        (r#"{"$set": {"a": 1}}"#, "/$set"),
        (r#"{"ok": 1, "a.b": 1}"#, "/a.b"),
        (r#"{"ok": {"in\u0000side": 1}}"#, "/ok/in\u{0}side"),
        (r#"{"list": [{"fine": 1}, {"$bad": 2}]}"#, "/list/1/$bad"),
        (r#"{"a/b": {"x~y": {"c.d": 1}}}"#, "/a~1b/x~0y/c.d"),
    ] {
        let body = create_raw(&app, &token, text)
            .await
            .expect(422, Some("validation_failed"));
        assert_eq!(fields(&body), [pointer], "{text}");
        assert!(body["errors"][0]["message"].is_string());
    }
    assert!(list_all(&app, &token, None).await.is_empty());
}

/// Regression: integer literals beyond the u64 range (and below -2^63) were
/// parsed as doubles and stored rounded, e.g. `9611607837184739013531009024`
/// came back as `9.611607837184739e27`.
async fn create_refuses_numbers_beyond_64_bits_however_they_are_written(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for text in [
        "9223372036854775808",
        "-9223372036854775809",
        "9611607837184739013531009024",
        "1e19",
        "1e300",
        "-4.73122352910183e+131",
    ] {
        let body = create_raw(
            &app,
            &token,
            &format!(r#"{{"ok": 1, "n": {{"x": [{text}]}}}}"#),
        )
        .await
        .expect(422, Some("validation_failed"));
        assert_eq!(fields(&body), ["/n/x/0"], "{text}");
    }
    assert!(list_all(&app, &token, None).await.is_empty());
    let document = r#"{"max": 9223372036854775807, "min": -9223372036854775808, "big": 9.2e18, "tiny": 1e-300}"#;
    let created = create_raw(&app, &token, document).await.expect(201, None);
    assert_eq!(
        created["data"],
        serde_json::from_str::<Value>(document).unwrap()
    );
}

async fn create_refuses_non_objects_oversized_integers_and_deep_nesting(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for text in ["[1, 2]", "\"text\"", "42", "null"] {
        let body = create_raw(&app, &token, text)
            .await
            .expect(422, Some("validation_failed"));
        assert_eq!(fields(&body), [""], "{text}");
    }
    let body = create_raw(&app, &token, r#"{"big": 18446744073709551615}"#)
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(fields(&body), ["/big"]);
    // 100 levels are accepted, 101 and far more are not.
    let nested = |levels: usize| {
        format!(
            "{{\"a\": {}1{}}}",
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    create_raw(&app, &token, &nested(100))
        .await
        .expect(201, None);
    for levels in [101, 500] {
        create_raw(&app, &token, &nested(levels))
            .await
            .expect(422, Some("validation_failed"));
    }
}

async fn create_refuses_malformed_json_and_other_media_types(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    create_raw(&app, &token, r#"{"a": "#)
        .await
        .expect(400, Some("malformed_json"));
    create_raw(&app, &token, "")
        .await
        .expect(400, Some("malformed_json"));
    app.send(
        TestRequest::post()
            .uri("/org/data")
            .insert_header(bearer(&token))
            .insert_header(ContentType::plaintext())
            .set_payload(r#"{"a": 1}"#),
    )
    .await
    .expect(415, Some("unsupported_media_type"));
}

async fn documents_up_to_the_size_limit_are_accepted_and_larger_ones_get_413(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let limit = app.settings.data.max_document_bytes.get();
    assert_eq!(limit, 262_144);
    // The tests' server.max_body_bytes is 4096: documents have their own limit.
    assert!(app.settings.server.max_body_bytes.get() < limit);
    let of_size = |size: usize| {
        let text = format!("{{\"pad\":\"{}\"}}", "x".repeat(size - 10));
        assert_eq!(text.len(), size);
        text
    };
    let id = create_raw(&app, &token, &of_size(limit))
        .await
        .expect(201, None)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = create_raw(&app, &token, &of_size(limit + 1))
        .await
        .expect(413, Some("payload_too_large"));
    assert!(body["detail"].as_str().unwrap().contains("262144"));
    let put = |text: String| {
        TestRequest::put()
            .uri(&format!("/org/data/{id}"))
            .insert_header(bearer(&token))
            .insert_header(ContentType::json())
            .set_payload(text)
    };
    app.send(put(of_size(limit + 1)))
        .await
        .expect(413, Some("payload_too_large"));
    app.send(put(of_size(limit))).await.expect(200, None);
    assert_eq!(list_all(&app, &token, None).await.len(), 1);
}

async fn listing_pages_through_every_document_once_in_creation_order(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let mut created = Vec::new();
    for n in 0..45 {
        created.push(create_ok(&app, &token, json!({ "n": n })).await);
    }
    // The default page size is 20.
    let first = list(&app, &token, "").await.expect(200, None);
    assert_eq!(first["items"].as_array().unwrap().len(), 20);

    let mut sizes = Vec::new();
    let mut listed = Vec::new();
    let mut query = "limit=20".to_owned();
    loop {
        let response = list(&app, &token, &query).await;
        let page = response.expect(200, None);
        let items = page["items"].as_array().unwrap();
        sizes.push(items.len());
        listed.extend(ids_of(items));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let link = response.header("link").unwrap();
                assert_eq!(
                    link,
                    format!(
                        "</org/data?limit=20&after={}>; rel=\"next\"",
                        encode(cursor)
                    )
                );
                query = format!("limit=20&after={}", encode(cursor));
            }
            None => {
                assert!(response.header("link").is_none());
                break;
            }
        }
    }
    assert_eq!(sizes, [20, 20, 5]);
    assert_eq!(listed, created, "pages are in creation order, each once");
    // Listing again gives the same order.
    assert_eq!(ids_of(&list_all(&app, &token, None).await), created);
}

async fn listing_filters_on_top_level_field_equality(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let docs = [
        json!({"name": "a", "status": "active", "age": 30, "vip": true, "gone": 1}),
        json!({"name": "b", "status": "active", "age": 41, "vip": false, "gone": false}),
        json!({"name": "c", "status": "inactive", "age": 30.0}),
        json!({"name": "d", "status": "active", "age": 30, "gone": null}),
        json!({"name": "e", "nested": {"status": "active"}}),
    ];
    for doc in &docs {
        create_ok(&app, &token, doc.clone()).await;
    }
    let names = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .map(|item| item["data"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (filter, expected) in [
        (json!({"status": "active"}), vec!["a", "b", "d"]),
        (json!({"status": "active", "age": 30}), vec!["a", "d"]),
        (json!({"age": 30}), vec!["a", "c", "d"]),
        (json!({"age": 30.0}), vec!["a", "c", "d"]),
        (json!({"vip": false}), vec!["b"]),
        (json!({"gone": null}), vec!["c", "d", "e"]),
        (json!({"status": "nobody"}), vec![]),
        (json!({}), vec!["a", "b", "c", "d", "e"]),
    ] {
        let listed = names(list_all(&app, &token, Some(&filter)).await);
        assert_eq!(listed, expected, "filter {filter}");
    }
    // The filter is repeated in the next link.
    let query = format!("limit=1&filter={}", encode(r#"{"status":"active"}"#));
    let response = list(&app, &token, &query).await;
    response.expect(200, None);
    assert!(response
        .header("link")
        .unwrap()
        .contains(&format!("&filter={}", encode(r#"{"status":"active"}"#))));
}

async fn listing_returns_422_for_invalid_limit_cursor_filter_or_parameter(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    create_ok(&app, &token, json!({"a": 1})).await;
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("limit=0".into(), vec!["limit"]),
        ("limit=101".into(), vec!["limit"]),
        ("limit=-1".into(), vec!["limit"]),
        ("limit=ten".into(), vec!["limit"]),
        ("limit=".into(), vec!["limit"]),
        ("after=garbage".into(), vec!["after"]),
        ("after=1_notauuid".into(), vec!["after"]),
        (format!("filter={}", encode("not json")), vec!["filter"]),
        (format!("filter={}", encode("[1]")), vec!["filter"]),
        (
            format!("filter={}", encode(r#"{"tags": ["a"]}"#)),
            vec!["filter/tags"],
        ),
        (
            format!("filter={}", encode(r#"{"$where": "1"}"#)),
            vec!["filter/$where"],
        ),
        (
            format!("filter={}", encode(r#"{"a.b": 1}"#)),
            vec!["filter/a.b"],
        ),
        (
            format!("limit=0&after=x&filter={}", encode("{")),
            vec!["limit", "after", "filter"],
        ),
        // Filters go in `filter`: a bare field is refused, not ignored.
        ("status=active".into(), vec!["query"]),
    ];
    for (query, expected) in cases {
        let body = list(&app, &token, &query)
            .await
            .expect(422, Some("validation_failed"));
        assert_eq!(fields(&body), expected, "{query}");
    }
    let eleven: serde_json::Map<String, Value> =
        (0..11).map(|n| (format!("f{n}"), json!(n))).collect();
    let query = format!("filter={}", encode(&Value::Object(eleven).to_string()));
    list(&app, &token, &query)
        .await
        .expect(422, Some("validation_failed"));
}

async fn get_returns_404_for_unknown_and_malformed_ids(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    create_ok(&app, &token, json!({"a": 1})).await;
    for id in [
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::nil().to_string(),
        "not-a-uuid".into(),
        "1234".into(),
        "%24where".into(),
    ] {
        get(&app, &token, &id)
            .await
            .expect(404, Some("document_not_found"));
        replace(&app, &token, &id, None, &json!({"b": 2}))
            .await
            .expect(404, Some("document_not_found"));
        delete(&app, &token, &id, None)
            .await
            .expect(404, Some("document_not_found"));
    }
}

async fn get_answers_304_when_if_none_match_names_the_current_etag(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"a": 1})).await;
    for tags in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
        let response = app
            .send(
                TestRequest::get()
                    .uri(&format!("/org/data/{id}"))
                    .insert_header(bearer(&token))
                    .insert_header(("If-None-Match", tags)),
            )
            .await;
        assert_eq!(response.status, 304, "{tags}");
        assert!(response.body.is_empty());
        assert_eq!(response.header("etag"), Some("\"1\""));
    }
    let response = app
        .send(
            TestRequest::get()
                .uri(&format!("/org/data/{id}"))
                .insert_header(bearer(&token))
                .insert_header(("If-None-Match", "\"2\"")),
        )
        .await;
    assert_eq!(response.expect(200, None)["data"], json!({"a": 1}));
}

async fn replace_honours_if_match_and_answers_412_with_the_current_etag(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"v": 1})).await;

    let response = replace(&app, &token, &id, Some("\"1\""), &json!({"v": 2})).await;
    let replaced = response.expect(200, None);
    assert_eq!(response.header("etag"), Some("\"2\""));
    assert_eq!(replaced["revision"], 2);
    assert_eq!(replaced["data"], json!({"v": 2}));

    // A stale, weak, malformed or unknown tag changes nothing.
    for stale in ["\"1\"", "W/\"2\"", "2", "\"02\"", "\"x\"", "\"1\", \"3\""] {
        let response = replace(&app, &token, &id, Some(stale), &json!({"v": "lost"})).await;
        let problem = response.expect(412, Some("precondition_failed"));
        assert_eq!(response.header("etag"), Some("\"2\""), "{stale}");
        assert!(problem["detail"].as_str().unwrap().contains("\"2\""));
    }
    let current = get(&app, &token, &id).await.expect(200, None);
    assert_eq!(current, replaced);

    // Any listed tag may match; `*` matches any revision.
    let response = replace(&app, &token, &id, Some("\"9\", \"2\""), &json!({"v": 3})).await;
    assert_eq!(response.expect(200, None)["revision"], 3);
    let response = replace(&app, &token, &id, Some("*"), &json!({"v": 4})).await;
    assert_eq!(response.header("etag"), Some("\"4\""));
    assert_eq!(
        get(&app, &token, &id).await.expect(200, None)["data"],
        json!({"v": 4})
    );
}

async fn replace_without_if_match_is_unconditional_and_keeps_id_and_creation_time(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let created = create(&app, &token, &json!({"v": 1, "old": true}))
        .await
        .expect(201, None);
    let id = created["id"].as_str().unwrap();
    for revision in 2..=3 {
        let replaced = replace(&app, &token, id, None, &json!({"v": revision}))
            .await
            .expect(200, None);
        assert_eq!(replaced["revision"], revision);
        assert_eq!(replaced["id"], created["id"]);
        assert_eq!(replaced["created_at"], created["created_at"]);
        assert_eq!(
            replaced["data"],
            json!({"v": revision}),
            "replaced, not merged"
        );
    }
    let found = get(&app, &token, id).await.expect(200, None);
    assert_eq!(found["data"], json!({"v": 3}));
    assert!(found["updated_at"].as_str().unwrap() >= found["created_at"].as_str().unwrap());
}

async fn replace_of_an_unknown_document_is_404_and_invalid_bodies_are_422(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"v": 1})).await;
    replace(
        &app,
        &token,
        &uuid::Uuid::now_v7().to_string(),
        Some("\"1\""),
        &json!({}),
    )
    .await
    .expect(404, Some("document_not_found"));
    let body = replace(&app, &token, &id, None, &json!({"ok": {"$inc": 1}}))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(fields(&body), ["/ok/$inc"]);
    replace(&app, &token, &id, None, &json!([1]))
        .await
        .expect(422, Some("validation_failed"));
    assert_eq!(
        get(&app, &token, &id).await.expect(200, None)["revision"],
        1
    );
}

async fn delete_returns_204_honours_if_match_and_then_the_document_is_gone(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"v": 1})).await;
    let kept = create_ok(&app, &token, json!({"v": "kept"})).await;
    replace(&app, &token, &id, None, &json!({"v": 2}))
        .await
        .expect(200, None);

    let response = delete(&app, &token, &id, Some("\"1\"")).await;
    response.expect(412, Some("precondition_failed"));
    assert_eq!(response.header("etag"), Some("\"2\""));
    get(&app, &token, &id).await.expect(200, None);

    let response = delete(&app, &token, &id, Some("\"2\"")).await;
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    get(&app, &token, &id)
        .await
        .expect(404, Some("document_not_found"));
    delete(&app, &token, &id, None)
        .await
        .expect(404, Some("document_not_found"));
    delete(&app, &token, &id, Some("*"))
        .await
        .expect(404, Some("document_not_found"));

    // Unconditional deletion.
    let other = create_ok(&app, &token, json!({"v": 3})).await;
    assert_eq!(delete(&app, &token, &other, None).await.status, 204);
    assert_eq!(ids_of(&list_all(&app, &token, None).await), [kept]);
}

async fn another_organization_can_neither_read_list_change_nor_delete_documents(app: TestApp) {
    let token_a = app.create_and_login("Acme", "admin@acme.example").await;
    let token_b = app.create_and_login("Globex", "admin@globex.example").await;
    let org_b = app.get_org("Globex").await.expect(200, None);
    let mut a_docs = Vec::new();
    for n in 0..3 {
        let created = create(&app, &token_a, &json!({"secret": "A's", "n": n}))
            .await
            .expect(201, None);
        a_docs.push(created);
    }
    // Fields naming another organization are just data of the caller's.
    let decoy = create(
        &app,
        &token_b,
        &json!({"organization_id": org_b["id"], "organization_name": "Acme", "org_id": "Acme"}),
    )
    .await
    .expect(201, None);

    for doc in &a_docs {
        let id = doc["id"].as_str().unwrap();
        get(&app, &token_b, id)
            .await
            .expect(404, Some("document_not_found"));
        for if_match in [None, Some("\"1\""), Some("*"), Some("\"1\", \"2\"")] {
            replace(&app, &token_b, id, if_match, &json!({"stolen": true}))
                .await
                .expect(404, Some("document_not_found"));
            delete(&app, &token_b, id, if_match)
                .await
                .expect(404, Some("document_not_found"));
        }
    }
    // B lists only its own document, whatever the filter or cursor.
    let b_items = list_all(&app, &token_b, None).await;
    assert_eq!(b_items, std::slice::from_ref(&decoy));
    assert!(list_all(&app, &token_b, Some(&json!({"secret": "A's"})))
        .await
        .is_empty());
    let cursor = format!(
        "0_{}",
        uuid::Uuid::parse_str(a_docs[0]["id"].as_str().unwrap())
            .unwrap()
            .simple()
    );
    let page = list(&app, &token_b, &format!("after={cursor}"))
        .await
        .expect(200, None);
    assert_eq!(page["items"], json!([decoy]));

    // A's documents are unchanged, and A does not see B's.
    assert_eq!(list_all(&app, &token_a, None).await, a_docs);
    for doc in &a_docs {
        let found = get(&app, &token_a, doc["id"].as_str().unwrap())
            .await
            .expect(200, None);
        assert_eq!(&found, doc);
    }
    get(&app, &token_a, decoy["id"].as_str().unwrap())
        .await
        .expect(404, Some("document_not_found"));
}

async fn documents_follow_a_rename_with_the_same_ids_and_content(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for n in 0..5 {
        create_ok(&app, &token, json!({"n": n, "nested": {"list": [n, "x"]}})).await;
    }
    let before = list_all(&app, &token, None).await;
    let renamed = app
        .update_org(&token, json!({"organization_name": "Acme Labs"}))
        .await
        .expect(200, None);
    assert_eq!(renamed["collection_name"], "org_acme_labs");

    assert_eq!(list_all(&app, &token, None).await, before);
    for doc in &before {
        let found = get(&app, &token, doc["id"].as_str().unwrap())
            .await
            .expect(200, None);
        assert_eq!(&found, doc);
    }
    // New writes land next to them.
    let id = create_ok(&app, &token, json!({"after": "rename"})).await;
    replace(
        &app,
        &token,
        before[0]["id"].as_str().unwrap(),
        Some("\"1\""),
        &json!({"v": 2}),
    )
    .await
    .expect(200, None);
    let after = list_all(&app, &token, None).await;
    assert_eq!(after.len(), 6);
    assert_eq!(after[5]["id"], id.as_str());

    // Nothing was left behind under the old name: a new organization named
    // like that starts empty.
    let token_new = app.create_and_login("Acme", "new@acme.example").await;
    assert!(list_all(&app, &token_new, None).await.is_empty());
}

async fn writes_racing_renames_are_applied_in_the_new_collection_or_refused_never_lost(
    app: TestApp,
) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    for n in 0..20 {
        create_ok(&app, &token, json!({"seed": n})).await;
    }
    let renaming = Cell::new(true);
    let writes_during_renames = Cell::new(0_usize);
    let writer = async {
        let mut created = Vec::new();
        let mut refused = 0_usize;
        let mut extra = 0;
        // Keep writing until the renames are over, then a few more.
        for n in 0.. {
            if !renaming.get() {
                extra += 1;
                if extra > 5 {
                    break;
                }
            } else {
                writes_during_renames.set(writes_during_renames.get() + 1);
            }
            let response = app
                .send_unchecked(
                    TestRequest::post()
                        .uri("/org/data")
                        .insert_header(bearer(&token))
                        .set_json(json!({"n": n})),
                )
                .await;
            match response.status.as_u16() {
                201 => created.push((response.json()["id"].as_str().unwrap().to_owned(), n)),
                503 => {
                    assert_eq!(response.header("retry-after"), Some("1"));
                    refused += 1;
                }
                status => panic!(
                    "a write racing a rename answered {status}: {}",
                    String::from_utf8_lossy(&response.body)
                ),
            }
            // Let the renamer run between writes as well.
            tokio::task::yield_now().await;
        }
        (created, refused)
    };
    let renamer = async {
        for name in ["Acme Labs", "Acme Works", "Acme Industries"] {
            tokio::time::sleep(Duration::from_millis(15)).await;
            app.update_org(&token, json!({"organization_name": name}))
                .await
                .expect(200, None);
        }
        renaming.set(false);
    };
    let ((created, refused), ()) = tokio::join!(writer, renamer);
    assert!(
        writes_during_renames.get() >= 3,
        "the writes did not overlap the renames"
    );
    assert!(!created.is_empty());

    let listed = list_all(&app, &token, None).await;
    let listed_writes: Vec<(String, i64)> = listed
        .iter()
        .filter(|item| item["data"]["n"].is_i64())
        .map(|item| {
            (
                item["id"].as_str().unwrap().to_owned(),
                item["data"]["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = created
        .iter()
        .map(|(id, n)| (id.clone(), i64::from(*n)))
        .collect();
    assert_eq!(
        listed_writes, expected,
        "every 201 is listed once (in order), no refused write is ({refused} refused)"
    );
    assert_eq!(listed.len(), 20 + created.len());
    let org = app.get_org("Acme Industries").await.expect(200, None);
    assert_eq!(org["collection_name"], "org_acme_industries");
    for old in ["Acme", "Acme Labs", "Acme Works"] {
        app.get_org(old)
            .await
            .expect(404, Some("organization_not_found"));
    }
}

async fn deleting_the_organization_deletes_its_documents(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"v": 1})).await;
    create_ok(&app, &token, json!({"v": 2})).await;
    app.delete_org(&token, "Acme").await.expect(200, None);
    // The old token is refused on every data endpoint.
    get(&app, &token, &id)
        .await
        .expect(401, Some("invalid_token"));
    list(&app, &token, "")
        .await
        .expect(401, Some("invalid_token"));

    let token = app.create_and_login("Acme", "admin@acme.example").await;
    assert!(list_all(&app, &token, None).await.is_empty());
    get(&app, &token, &id)
        .await
        .expect(404, Some("document_not_found"));
}

async fn every_data_endpoint_requires_a_token_before_looking_at_the_request(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"v": 1})).await;
    let requests = || {
        [
            TestRequest::post()
                .uri("/org/data")
                .insert_header(ContentType::json())
                .set_payload("{\"$bad\": "),
            TestRequest::get().uri("/org/data?limit=0&bogus=1"),
            TestRequest::get().uri(&format!("/org/data/{id}")),
            TestRequest::get().uri("/org/data/not-a-uuid"),
            TestRequest::put()
                .uri(&format!("/org/data/{id}"))
                .insert_header(("If-Match", "\"9\""))
                .set_json(json!([1])),
            TestRequest::delete().uri(&format!("/org/data/{id}")),
        ]
    };
    for request in requests() {
        let response = app.send(request).await;
        response.expect(401, Some("missing_token"));
        assert!(response.header("www-authenticate").is_some());
    }
    for request in requests() {
        app.send(request.insert_header(("Authorization", "Bearer not.a.token")))
            .await
            .expect(401, Some("invalid_token"));
    }
    let found = get(&app, &token, &id).await.expect(200, None);
    assert_eq!(found["revision"], 1);
}

async fn data_resources_answer_other_methods_with_405(app: TestApp) {
    for (request, allowed) in [
        (TestRequest::put().uri("/org/data"), "GET, HEAD, POST"),
        (TestRequest::delete().uri("/org/data"), "GET, HEAD, POST"),
        (
            TestRequest::post().uri(&format!("/org/data/{}", uuid::Uuid::now_v7())),
            "GET, HEAD, PUT, DELETE",
        ),
        (
            TestRequest::patch().uri("/org/data/x"),
            "GET, HEAD, PUT, DELETE",
        ),
    ] {
        let response = app.send(request).await;
        response.expect(405, Some("method_not_allowed"));
        assert_eq!(response.header("allow"), Some(allowed));
    }
}

/// `PUT`/`DELETE` of a document with these conditional headers.
async fn conditional(
    app: &TestApp,
    token: &str,
    request: TestRequest,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> TestResponse {
    let mut request = request.insert_header(bearer(token));
    if let Some(tags) = if_match {
        request = request.insert_header(("If-Match", tags.to_owned()));
    }
    if let Some(tags) = if_none_match {
        request = request.insert_header(("If-None-Match", tags.to_owned()));
    }
    app.send(request).await
}

/// RFC 9110 §13.1.2: `If-None-Match` on a write fails (412, nothing
/// changed) when the document exists (`*`) or its current tag is listed
/// (weak comparison).
async fn writes_with_if_none_match_naming_the_document_answer_412_and_change_nothing(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"v": 1})).await;
    let uri = format!("/org/data/{id}");
    for tags in ["*", "\"1\"", "W/\"1\"", "\"7\", \"1\""] {
        let put = TestRequest::put().uri(&uri).set_json(json!({"v": "lost"}));
        let response = conditional(&app, &token, put, None, Some(tags)).await;
        response.expect(412, Some("precondition_failed"));
        assert_eq!(response.header("etag"), Some("\"1\""), "{tags}");
        let delete = TestRequest::delete().uri(&uri);
        let response = conditional(&app, &token, delete, None, Some(tags)).await;
        response.expect(412, Some("precondition_failed"));
        assert_eq!(response.header("etag"), Some("\"1\""), "{tags}");
    }
    let found = get(&app, &token, &id).await.expect(200, None);
    assert_eq!(
        (found["revision"].clone(), found["data"].clone()),
        (json!(1), json!({"v": 1}))
    );

    // Another tag: the write proceeds.
    let put = TestRequest::put().uri(&uri).set_json(json!({"v": 2}));
    let response = conditional(&app, &token, put, None, Some("\"7\"")).await;
    assert_eq!(response.expect(200, None)["revision"], 2);
    let delete = TestRequest::delete().uri(&uri);
    let response = conditional(&app, &token, delete, None, Some("\"1\"")).await;
    assert_eq!(response.status, 204);

    // A document that does not exist is a 404 whatever the conditions.
    let unknown = format!("/org/data/{}", uuid::Uuid::now_v7());
    for (if_match, if_none_match) in [
        (None, Some("*")),
        (Some("*"), None),
        (Some("\"1\""), Some("\"2\"")),
    ] {
        let put = TestRequest::put().uri(&unknown).set_json(json!({}));
        conditional(&app, &token, put, if_match, if_none_match)
            .await
            .expect(404, Some("document_not_found"));
        let delete = TestRequest::delete().uri(&unknown);
        conditional(&app, &token, delete, if_match, if_none_match)
            .await
            .expect(404, Some("document_not_found"));
    }
}

/// RFC 9110 §13.2.2: `If-Match` first (412 when it fails, also on `GET`),
/// then `If-None-Match` (304 on `GET`, 412 on writes).
async fn if_match_is_evaluated_before_if_none_match_and_get_honours_if_match(app: TestApp) {
    let token = app.create_and_login("Acme", "admin@acme.example").await;
    let id = create_ok(&app, &token, json!({"v": 1})).await;
    let uri = format!("/org/data/{id}");
    let read = || TestRequest::get().uri(&uri);
    for (if_match, if_none_match, status) in [
        (Some("\"1\""), None, 200),
        (Some("*"), None, 200),
        (Some("\"2\""), None, 412),
        (Some("W/\"1\""), None, 412),
        (Some("\"1\""), Some("\"1\""), 304),
        (Some("\"2\""), Some("\"1\""), 412),
        (Some("\"1\""), Some("\"2\""), 200),
    ] {
        let response = conditional(&app, &token, read(), if_match, if_none_match).await;
        assert_eq!(response.status, status, "{if_match:?} {if_none_match:?}");
        assert_eq!(response.header("etag"), Some("\"1\""));
    }
    for (if_match, if_none_match) in [
        (Some("\"1\""), Some("\"1\"")),
        (Some("*"), Some("*")),
        (Some("\"2\""), Some("\"2\"")),
        (Some("W/\"1\""), Some("\"2\"")),
    ] {
        let put = TestRequest::put().uri(&uri).set_json(json!({"v": "lost"}));
        let response = conditional(&app, &token, put, if_match, if_none_match).await;
        response.expect(412, Some("precondition_failed"));
        let delete = TestRequest::delete().uri(&uri);
        let response = conditional(&app, &token, delete, if_match, if_none_match).await;
        response.expect(412, Some("precondition_failed"));
    }
    assert_eq!(
        get(&app, &token, &id).await.expect(200, None)["data"],
        json!({"v": 1})
    );
    let put = TestRequest::put().uri(&uri).set_json(json!({"v": 2}));
    let response = conditional(&app, &token, put, Some("*"), Some("\"2\"")).await;
    assert_eq!(response.expect(200, None)["revision"], 2);
    let put = TestRequest::put().uri(&uri).set_json(json!({"v": 3}));
    let response = conditional(&app, &token, put, Some("\"1\", \"2\""), Some("\"1\"")).await;
    assert_eq!(response.expect(200, None)["revision"], 3);
    let delete = TestRequest::delete().uri(&uri);
    let response = conditional(&app, &token, delete, Some("\"3\""), Some("\"1\"")).await;
    assert_eq!(response.status, 204);
}
