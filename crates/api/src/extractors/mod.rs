//! Request extractors and their error mapping.

pub mod auth;
mod bearer;
pub mod body;
pub mod operator;
