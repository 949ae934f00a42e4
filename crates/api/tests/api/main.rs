//! The API's integration tests: one binary, the same suite against the
//! embedded store and against MongoDB (`ORGSVC_TEST_MONGODB_URI`, set by
//! `scripts/test`), except tests of store-independent HTTP behaviour, which
//! run once (`store_independent_suite!`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failed checks panic

/// Expands store-independent test functions `async fn name(app: TestApp)`
/// into `embedded::name` and `mongodb::name` tests.
macro_rules! store_suite {
    ($($test:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test($crate::helpers::TestApp::spawn($crate::helpers::Backend::Embedded).await).await;
                }
            )+
        }
        mod mongodb {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test($crate::helpers::TestApp::spawn($crate::helpers::Backend::Mongodb).await).await;
                }
            )+
        }
    };
}

/// Expands `async fn name(backend: Backend)` tests (which spawn their own,
/// specially configured apps) into `embedded::name` and `mongodb::name`.
macro_rules! backend_suite {
    ($($test:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Embedded).await;
                }
            )+
        }
        mod mongodb {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Mongodb).await;
                }
            )+
        }
    };
}

/// Expands test functions `async fn name(app: TestApp)` that check HTTP
/// behaviour independent of the store (routing, 404/405, headers, docs,
/// request parsing and validation, token checks) into one
/// `store_independent::name` test, on the embedded store: running them on
/// MongoDB too would test nothing more (that the stores behave alike is the
/// `TenantStore` contract suite's job).
macro_rules! store_independent_suite {
    ($($test:ident),+ $(,)?) => {
        mod store_independent {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test($crate::helpers::TestApp::spawn($crate::helpers::Backend::Embedded).await).await;
                }
            )+
        }
    };
}

mod account_recovery;
mod admin_login;
mod admins;
mod audit;
mod authentication;
mod bodies;
mod conditional;
mod cors;
mod data;
mod email;
mod failures;
mod helpers;
mod http;
mod invitations;
mod login_protection;
mod metrics;
mod openapi;
mod operator_cli;
mod operator_keys;
mod operator_organizations;
mod organizations;
mod sessions;
mod shutdown;
mod signing_keys;
mod tenancy;
mod transport;
