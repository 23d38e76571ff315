//! The response bodies of the HTTP API as types: the handlers build these,
//! serde writes them, and `utoipa` derives the OpenAPI description from
//! the same types ([`super::openapi`], `GET /openapi.json`). A field added
//! to a handler's answer is a field added here, so the description cannot
//! drift from what is served; `io/tests/openapi.rs` checks live answers
//! against it.

use serde::Serialize;
use utoipa::ToSchema;

/// A proof as the client sends it (`POST /proof/submit`; one item of `POST /proofs`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofRequest {
    pub payload: ProofPayload,
    /// `0x` + 130 hex digits: r ‖ s ‖ v, v ∈ {27, 28}, low s.
    #[schema(example = "0x…")]
    pub signature: String,
}

/// `STEP-PROOF-v1`'s payload (`../shared/step-proof-v1/README.md`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofPayload {
    pub version: String,
    pub account: String,
    pub triangle_id: String,
    pub lat: f64,
    pub lon: f64,
    pub accuracy: f64,
    pub timestamp: String,
    pub nonce: String,
}

/// `final`: the proof is in a finalized block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FinalStatus {
    Final,
}

/// `pending`: accepted, its block not final yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PendingStatus {
    Pending,
}

/// A proof in a finalized block: Phase 2's success body plus `status`,
/// `proofId` and `height`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinalBody {
    pub ok: bool,
    pub status: FinalStatus,
    pub proof_id: String,
    /// STEP, 6 decimals (`"0.500000"`).
    pub reward: String,
    pub unit: String,
    pub triangle_id: String,
    pub level: u8,
    pub clicks: u32,
    /// The account's balance after this proof, in micro-STEP.
    pub balance: String,
    pub height: u64,
    /// `null` only for a block time outside the ISO-8601 range.
    pub processed_at: Option<String>,
}

/// A proof the pipeline accepted whose block is not final yet (202).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingBody {
    pub ok: bool,
    pub status: PendingStatus,
    pub proof_id: String,
    pub reward: String,
    pub unit: String,
    pub triangle_id: String,
    pub level: u8,
}

/// Every error: Phase 2's shape.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub ok: bool,
    /// `docs/ERROR_CODES.md`.
    pub code: String,
    pub message: String,
    pub timestamp: Option<String>,
}

/// One result of `POST /proofs` (`index` is the proof's place in the body).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Final(#[schema(inline)] Indexed<FinalBody>),
    Pending(#[schema(inline)] Indexed<PendingBody>),
    Error(#[schema(inline)] Indexed<ErrorItem>),
}

/// A body with the proof's `index` in the request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Indexed<T: ToSchema> {
    pub index: usize,
    #[serde(flatten)]
    pub body: T,
}

/// A refused proof in a batch (no timestamp: the batch answer has one time).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorItem {
    pub ok: bool,
    pub code: String,
    pub message: String,
}

/// `POST /proofs`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub ok: bool,
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

/// `GET /proof/{id}`: the proof's verdict body and the proof itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofRecordBody {
    pub ok: bool,
    pub status: String,
    pub proof_id: String,
    pub reward: String,
    pub unit: String,
    pub triangle_id: String,
    pub level: u8,
    /// Final proofs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clicks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
    pub account: String,
    pub nonce: String,
    pub timestamp: String,
    pub lat: f64,
    pub lon: f64,
    pub accuracy: f64,
}

/// `GET /account/{address}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountBody {
    pub ok: bool,
    /// Lower case.
    pub account: String,
    /// Micro-STEP.
    pub balance: String,
    /// STEP, 6 decimals.
    pub balance_step: String,
    pub unit: String,
    /// Accepted proofs (used nonces).
    pub nonces: u64,
    pub last_proof_at: Option<String>,
}

/// A point in degrees.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

/// `GET /triangle/{id}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriangleBody {
    pub ok: bool,
    pub triangle_id: String,
    pub level: u8,
    pub clicks: u32,
    /// `pending`, `active`, `partially_mined`, `exhausted` or `subdivided`.
    pub state: String,
    pub last_click_at: Option<String>,
    pub centroid: LatLon,
    /// The three vertices, `[lat, lon]`.
    pub polygon: Vec<[f64; 2]>,
}

/// Pipeline occupancy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueBody {
    pub ingest: usize,
    pub in_flight: usize,
    pub capacity: usize,
}

/// `GET /status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub ok: bool,
    pub backend: String,
    pub height: u64,
    pub round: i64,
    pub state_root: String,
    pub validators: usize,
    pub peers: usize,
    pub ready: bool,
    pub queue: QueueBody,
}

/// `GET /proof/config`: Phase 2's limits (`null`: that check is off).
#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    pub GPS_MAX_ACCURACY_M: f64,
    pub PROOF_SPEED_LIMIT_MPS: Option<f64>,
    pub PROOF_MORATORIUM_MS: Option<u64>,
}

/// `GET /health` when ready.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthBody {
    pub ok: bool,
    pub live: bool,
    pub ready: bool,
    pub height: u64,
    /// `off`, `ok` or `down`.
    pub redis: String,
}

/// `GET /health`, `/health/ready` when not ready (503).
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReadyBody {
    pub ok: bool,
    pub code: String,
    pub message: String,
    pub timestamp: Option<String>,
    pub ready: bool,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

/// `GET /health/live`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveBody {
    pub ok: bool,
    pub live: bool,
}

/// `GET /health/ready` when ready.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyBody {
    pub ok: bool,
    pub ready: bool,
}

/// Double signatures by one validator at one height.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidencePair {
    pub validator: String,
    pub pairs: usize,
}

/// Misbehaviour seen at one height.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvidenceRecord {
    pub height: u64,
    pub double_votes: Vec<EvidencePair>,
    pub double_proposals: Vec<EvidencePair>,
}

/// `GET /evidence`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBody {
    pub ok: bool,
    pub evidence: Vec<EvidenceRecord>,
}
