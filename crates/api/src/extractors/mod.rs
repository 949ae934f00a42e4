//! Request extractors and their error mapping.

pub mod auth;
pub mod body;
pub mod operator;
