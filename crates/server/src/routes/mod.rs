//! HTTP routes.

pub mod api;
pub mod changes;
pub mod health;
pub mod metrics;
pub mod ui;
pub mod webhook;

use actix_web::web;

use crate::error::ApiError;

/// Runs a store read off the async workers; a store failure becomes an [`ApiError`].
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, meterhook_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|_| ApiError::Internal("the query task stopped".into()))?
        .map_err(ApiError::from_store)
}
