//! The credential of an `Authorization: Bearer <token>` header (RFC 6750
//! §2.1), shared by the admin and the operator extractors.

use actix_web::http::header;
use actix_web::HttpRequest;

/// What a request's `Authorization` header presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bearer<'a> {
    /// No header, one that is not visible ASCII, or another scheme: no
    /// credential at all (RFC 6750 §3.1: the challenge has no error code).
    Absent,
    /// The `Bearer` scheme (any case) with nothing after it: a credential
    /// that is presented but cannot be valid.
    Blank,
    /// The token, without surrounding spaces.
    Token(&'a str),
}

/// The bearer credential of `req`.
pub(crate) fn bearer(req: &HttpRequest) -> Bearer<'_> {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return Bearer::Absent;
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Absent;
    }
    match token.trim() {
        "" => Bearer::Blank,
        token => Bearer::Token(token),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderValue, AUTHORIZATION};
    use actix_web::test::TestRequest;
    use actix_web::HttpRequest;

    use super::{bearer, Bearer};

    fn with_authorization(value: &[u8]) -> HttpRequest {
        TestRequest::default()
            .insert_header((AUTHORIZATION, HeaderValue::from_bytes(value).unwrap()))
            .to_http_request()
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_spaces_around_the_token_are_dropped() {
        assert_eq!(
            bearer(&with_authorization(b"Bearer abc")),
            Bearer::Token("abc")
        );
        assert_eq!(
            bearer(&with_authorization(b"bEaReR   abc  ")),
            Bearer::Token("abc")
        );
    }

    #[test]
    fn another_scheme_or_an_unreadable_header_presents_nothing() {
        let none = TestRequest::default().to_http_request();
        assert_eq!(bearer(&none), Bearer::Absent);
        assert_eq!(bearer(&with_authorization(b"Basic YTpi")), Bearer::Absent);
        assert_eq!(bearer(&with_authorization(b"Bearerabc")), Bearer::Absent);
        assert_eq!(
            bearer(&with_authorization("Bearer é".as_bytes())),
            Bearer::Absent
        );
    }

    #[test]
    fn the_scheme_alone_is_a_blank_credential() {
        assert_eq!(bearer(&with_authorization(b"Bearer")), Bearer::Blank);
        assert_eq!(bearer(&with_authorization(b"Bearer    ")), Bearer::Blank);
    }
}
