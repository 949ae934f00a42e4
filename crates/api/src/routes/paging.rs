//! The `Link: <…>; rel="next"` of the cursor-paginated listings
//! (RFC 8288 §3): the listing's path with the parameters that make its next
//! page, every value percent-encoded.

/// The `Link` value of the next page: `<path?name=value&…>; rel="next"`,
/// with the parameters that have a value, in order, each value
/// percent-encoded ([`percent_encode`]).
pub(crate) fn next_page_link<'a>(
    path: &str,
    params: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> String {
    let query: Vec<String> = params
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| format!("{name}={}", percent_encode(value))))
        .collect();
    format!("<{path}?{}>; rel=\"next\"", query.join("&"))
}

/// Percent-encodes everything but RFC 3986 §2.3 unreserved characters.
pub(crate) fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_keeps_the_parameters_with_a_value_in_order_encoded() {
        assert_eq!(
            next_page_link(
                "/org/data",
                [
                    ("limit", Some("20")),
                    ("q", None),
                    ("after", Some("1_ab")),
                    ("filter", Some(r#"{"a":"b c"}"#))
                ]
            ),
            "</org/data?limit=20&after=1_ab&filter=%7B%22a%22%3A%22b%20c%22%7D>; rel=\"next\""
        );
        assert_eq!(percent_encode("a.b~c-d_e"), "a.b~c-d_e");
        assert_eq!(percent_encode("é/?"), "%C3%A9%2F%3F");
    }
}
