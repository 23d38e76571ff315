//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, derived
//! by `utoipa` from the handlers' annotations and the body types of
//! [`super::schema`]. Phase 2's routes (`POST /proof/submit`,
//! `GET /proof/config`) keep Phase 2's shapes; the rest are Phase 3's
//! additions. `io/tests/openapi.rs` validates live answers against it.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::OpenApi;

use super::schema::*;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "STEP validator HTTP API",
        description = "Phase 2-compatible proof submission and Phase 3's queries. Error codes: docs/ERROR_CODES.md."
    ),
    paths(
        super::proofs::submit_one,
        super::proofs::submit_many,
        super::query::proof_config,
        super::query::proof,
        super::query::account,
        super::query::triangle,
        super::query::status,
        super::query::health,
        super::query::live,
        super::query::ready,
        super::query::metrics,
        super::query::evidence,
        super::events::events,
        openapi_json,
    ),
    components(schemas(
        ProofRequest,
        ProofPayload,
        FinalBody,
        PendingBody,
        ErrorBody,
        BatchBody,
        BatchItem,
        ErrorItem,
        ProofRecordBody,
        AccountBody,
        TriangleBody,
        LatLon,
        StatusBody,
        QueueBody,
        ConfigBody,
        HealthBody,
        NotReadyBody,
        LiveBody,
        ReadyBody,
        EvidenceBody,
        EvidenceRecord,
        EvidencePair
    ))
)]
pub struct ApiDoc;

/// The description, rendered once.
pub fn openapi_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| match ApiDoc::openapi().to_pretty_json() {
        Ok(t) => t,
        // Serialising a derived description cannot fail; if it ever did,
        // the route says so instead of serving a partial document.
        Err(e) => {
            format!("{{\"ok\":false,\"code\":\"INTERNAL_ERROR\",\"message\":\"openapi: {e}\"}}")
        }
    })
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "this description (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_text()).into_response()
}
