//! HTTP routes.

pub mod api;
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

/// An id taken from a path, checked by the rule every stored id follows
/// (`meterhook_smartcar::limits::check_id`): 400 with the rule it broke. No such id is stored,
/// and one with a NUL would reach PostgreSQL, which refuses it (500).
pub(crate) fn path_id(field: &'static str, id: String) -> Result<String, ApiError> {
    meterhook_smartcar::limits::check_id(field, &id)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(id)
}
