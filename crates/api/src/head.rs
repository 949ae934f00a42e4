//! `HEAD` for every `GET` resource (RFC 9110 §9.3.2): the same status and
//! headers as `GET`, without the content.
//!
//! One middleware for the whole app (routes, `/openapi.json`, `/docs`):
//! a `HEAD` request is routed as `GET`, and the answer keeps its headers and
//! the size of its content (so `Content-Length` is `GET`'s) but sends none.
//! A resource without `GET` answers `HEAD` with 405 like any other method
//! it does not allow.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Bytes;

/// Routes `HEAD` as `GET` and drops the content of the answer, keeping its
/// size (RFC 9110 §9.3.2: `HEAD` answers what `GET` would, without content).
pub async fn head_as_get<B: MessageBody>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, HeadBody>>, actix_web::Error> {
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
    }
    let response = next.call(req).await?;
    if !head {
        return Ok(response.map_into_left_body());
    }
    Ok(response.map_body(|_, body| EitherBody::right(HeadBody(body.size()))))
}

/// The content of an answer to `HEAD`: none, but the size of `GET`'s, which
/// HTTP/1.1 sends as `Content-Length` (RFC 9110 §8.6).
#[derive(Debug)]
pub struct HeadBody(BodySize);

impl MessageBody for HeadBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}
