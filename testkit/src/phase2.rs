//! A Phase 2 stand-in (a test fixture, not product): `POST /proof/submit`'s
//! rules as `../shared/PHASE2_REFERENCE.md` records them, **with its
//! documented defects**, over in-memory MongoDB collections that it can
//! write the way `mongoexport` does.
//!
//! Defects kept on purpose: high-s and v = 0/1 signatures accepted (1, 2);
//! triangle ids never validated, an unknown or bad id gets a "mock"
//! triangle, a ±0.01° box saved before the geometry check (3); planar
//! point-in-polygon in lon/lat (4); replay and heuristics keyed on the
//! account exactly as sent (5).

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};
use step_engine::crypto::CheckedSignature;
use step_engine::jsnum::js_string;
use step_engine::mesh::triangle_vertices;
use step_engine::message::eip191_digest;
use step_engine::proof::{decode_signature, Timestamp};
use step_engine::reward::reward_micro;
use step_engine::{Address, Backend, TriangleId};

/// secp256k1 group order n, big-endian.
const N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
];

/// Phase 2's limits (`GET /proof/config`).
pub const GPS_MAX_ACCURACY_M: f64 = 50.0;
pub const PROOF_SPEED_LIMIT_MPS: f64 = 15.0;
pub const PROOF_MORATORIUM_MS: i64 = 10_000;
/// The click that subdivides a triangle.
pub const SUBDIVIDE_AT: u32 = 11;

#[derive(Debug, Clone)]
struct Tri {
    level: u32,
    face: u32,
    clicks: u32,
    state: &'static str,
    /// `[lon, lat]` ring, closed.
    polygon: Vec<[f64; 2]>,
    last_click_ms: Option<i64>,
    parent: Option<String>,
}

/// Phase 2's answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// The stand-in's state: Phase 2's three collections, in memory.
#[derive(Debug, Default)]
pub struct Phase2 {
    /// `_id` as sent → balance in micro-STEP.
    accounts: BTreeMap<String, u64>,
    triangles: BTreeMap<String, Tri>,
    events: Vec<Value>,
    /// (account as sent, nonce): the unique index.
    used: HashSet<(String, String)>,
    /// account as sent → (ms, lat, lon) of its last accepted proof.
    last: BTreeMap<String, (i64, f64, f64)>,
}

fn err(status: u16, code: &str, message: &str) -> Answer {
    Answer {
        status,
        body: json!({"ok": false, "code": code, "message": message,
                     "timestamp": "2026-01-01T00:00:00.000Z"}),
    }
}

fn iso(ms: i64) -> String {
    Timestamp::from_unix_ms(ms).map_or_else(|| ms.to_string(), |t| t.as_str().to_owned())
}

fn date(ms: i64) -> Value {
    json!({"$date": iso(ms)})
}

/// Phase 2's signature policy: v ∈ {0, 1, 27, 28}, and a high s is folded
/// to its low twin (so both verify).
fn phase2_policy(sig: &[u8; 65]) -> Option<CheckedSignature> {
    let recid = match sig[64] {
        0 | 1 => sig[64],
        27 | 28 => sig[64] - 27,
        _ => return None,
    };
    let mut rs = [0u8; 64];
    rs.copy_from_slice(&sig[..64]);
    let half = {
        let mut h = N;
        let mut carry = 0u8;
        for b in h.iter_mut() {
            let v = (u16::from(carry) << 8) | u16::from(*b);
            *b = (v / 2) as u8;
            carry = (v % 2) as u8;
        }
        h
    };
    if rs[32..] > half[..] {
        // s := n - s, and the recovery id flips.
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(N[i]) - i16::from(rs[32 + i]) - borrow;
            borrow = i16::from(d < 0);
            rs[32 + i] = d.rem_euclid(256) as u8;
        }
        return Some(CheckedSignature {
            rs,
            recid: recid ^ 1,
        });
    }
    Some(CheckedSignature { rs, recid })
}

/// Planar ray casting over a `[lon, lat]` ring (Phase 2's polygon library).
fn planar_contains(ring: &[[f64; 2]], lon: f64, lat: f64) -> bool {
    let mut inside = false;
    let n = ring.len();
    let mut j = n - 1;
    for i in 0..n {
        let (xi, yi) = (ring[i][0], ring[i][1]);
        let (xj, yj) = (ring[j][0], ring[j][1]);
        if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let r = 6_371_000.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * r * a.sqrt().asin()
}

fn mesh_tri(id: &TriangleId, parent: Option<String>) -> Tri {
    let mut polygon: Vec<[f64; 2]> = triangle_vertices(id)
        .iter()
        .map(|v| {
            let (lat, lon) = v.to_lat_lon();
            [lon, lat]
        })
        .collect();
    polygon.push(polygon[0]);
    Tri {
        level: u32::from(id.level()),
        face: u32::from(id.face()),
        clicks: 0,
        state: "pending",
        polygon,
        last_click_ms: None,
        parent,
    }
}

impl Phase2 {
    pub fn new() -> Phase2 {
        Phase2::default()
    }

    /// `POST /proof/submit` with this body.
    pub fn submit(&mut self, body: &[u8]) -> Answer {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return err(400, "INVALID_PAYLOAD", "body is not JSON");
        };
        let (Some(p), Some(sig)) = (v.get("payload"), v.get("signature").and_then(Value::as_str))
        else {
            return err(400, "INVALID_PAYLOAD", "missing payload or signature");
        };
        let s = |k: &str| p.get(k).and_then(Value::as_str);
        let f = |k: &str| p.get(k).and_then(Value::as_f64);
        let (Some(version), Some(account), Some(tri), Some(ts), Some(nonce)) = (
            s("version"),
            s("account"),
            s("triangleId"),
            s("timestamp"),
            s("nonce"),
        ) else {
            return err(400, "INVALID_PAYLOAD", "missing fields");
        };
        let (Some(lat), Some(lon), Some(acc)) = (f("lat"), f("lon"), f("accuracy")) else {
            return err(400, "INVALID_PAYLOAD", "missing fields");
        };
        if version != "STEP-PROOF-v1" {
            return err(400, "INVALID_PAYLOAD", "unsupported version");
        }
        let Some(time) = Timestamp::parse(ts) else {
            return err(400, "INVALID_PAYLOAD", "bad timestamp");
        };
        if !(acc > 0.0 && acc <= GPS_MAX_ACCURACY_M) {
            return err(422, "LOW_GPS_ACCURACY", "accuracy");
        }
        let lower = account.to_ascii_lowercase();
        let msg = format!(
            "STEP-PROOF-v1|account:{lower}|triangle:{tri}|lat:{}|lon:{}|acc:{}|ts:{ts}|nonce:{nonce}",
            js_string(lat),
            js_string(lon),
            js_string(acc)
        );
        let recovered = decode_signature(sig)
            .ok()
            .and_then(|raw| phase2_policy(&raw))
            .and_then(|c| {
                Backend::default()
                    .recover(&eip191_digest(msg.as_bytes()), &c)
                    .ok()
            })
            .map(|pk| Address::from_public_key(&pk).to_string());
        if recovered.as_deref() != Some(lower.as_str()) {
            return err(401, "BAD_SIGNATURE", "signature");
        }
        let key = (account.to_owned(), nonce.to_owned());
        if self.used.contains(&key) {
            return err(409, "NONCE_REPLAY", "nonce already used");
        }
        let now_ms = time.unix_ms();
        let t = match self.triangles.get(tri) {
            Some(t) => t.clone(),
            None => {
                let t = match TriangleId::parse(tri) {
                    Ok(id) => mesh_tri(&id, None),
                    Err(_) => Tri {
                        level: 1,
                        face: 0,
                        clicks: 0,
                        state: "pending",
                        polygon: vec![
                            [lon - 0.01, lat - 0.01],
                            [lon + 0.01, lat - 0.01],
                            [lon + 0.01, lat + 0.01],
                            [lon - 0.01, lat + 0.01],
                            [lon - 0.01, lat - 0.01],
                        ],
                        last_click_ms: None,
                        parent: None,
                    },
                };
                // Saved before the geometry check (defect 3).
                self.triangles.insert(tri.to_owned(), t.clone());
                t
            }
        };
        if !planar_contains(&t.polygon, lon, lat) {
            return err(422, "OUT_OF_BOUNDS", "point not in triangle");
        }
        let mut speed = 0.0;
        if let Some(&(ms, plat, plon)) = self.last.get(account) {
            let dt = now_ms - ms;
            if dt <= 0 {
                return err(422, "TOO_FAST", "time delta");
            }
            speed = haversine_m(plat, plon, lat, lon) / (dt as f64 / 1000.0);
            if speed > PROOF_SPEED_LIMIT_MPS {
                return err(422, "TOO_FAST", "speed");
            }
            if dt < PROOF_MORATORIUM_MS {
                return err(422, "MORATORIUM", "moratorium");
            }
        }
        if t.state == "subdivided" || t.clicks >= 28 {
            // Not recorded in the reference: the schema caps clicks at 28.
            return err(500, "INTERNAL_ERROR", "triangle not mineable");
        }
        let level = u8::try_from(t.level).unwrap_or(21);
        let reward = reward_micro(level);
        let balance = self.accounts.entry(account.to_owned()).or_insert(0);
        *balance += reward;
        let balance = *balance;
        self.used.insert(key);
        self.last.insert(account.to_owned(), (now_ms, lat, lon));
        let clicks = t.clicks + 1;
        let reward_text = format!("{}.{:06}", reward / 1_000_000, reward % 1_000_000);
        self.events.push(json!({
            "_id": {"$oid": format!("{:024x}", self.events.len() + 1)},
            "triangleId": tri, "eventType": "click", "timestamp": date(now_ms),
            "account": account, "nonce": nonce, "signature": sig,
            "payload": {"minerAddress": account, "reward": reward_text, "clickNumber": clicks,
                        "lat": lat, "lon": lon, "accuracy": acc, "speed": speed},
        }));
        self.click(tri, clicks, now_ms);
        Answer {
            status: 200,
            body: json!({"ok": true, "reward": reward_text, "unit": "STEP", "triangleId": tri,
                         "level": t.level, "clicks": clicks,
                         "balance": (balance / 1_000_000).to_string(),
                         "processedAt": iso(now_ms)}),
        }
    }

    fn click(&mut self, tri: &str, clicks: u32, now_ms: i64) {
        let Some(t) = self.triangles.get_mut(tri) else {
            return;
        };
        t.clicks = clicks;
        t.last_click_ms = Some(now_ms);
        t.state = if clicks >= 28 { "exhausted" } else { "active" };
        if clicks == SUBDIVIDE_AT && t.level < 21 {
            t.state = "subdivided";
            let Ok(id) = TriangleId::parse(tri) else {
                return;
            };
            for k in 0..4 {
                if let Some(c) = id.child(k) {
                    self.triangles
                        .entry(c.to_string())
                        .or_insert_with(|| mesh_tri(&c, Some(tri.to_owned())));
                }
            }
            self.events.push(json!({
                "_id": {"$oid": format!("{:024x}", self.events.len() + 1)},
                "triangleId": tri, "eventType": "subdivide", "timestamp": date(now_ms),
            }));
        }
    }

    /// The balance Phase 2 holds for `_id` exactly as sent (micro-STEP).
    pub fn balance_as_sent(&self, account: &str) -> Option<u64> {
        self.accounts.get(account).copied()
    }

    /// Every (triangle id, clicks) it holds.
    pub fn clicks(&self) -> Vec<(String, u32)> {
        self.triangles
            .iter()
            .map(|(id, t)| (id.clone(), t.clicks))
            .collect()
    }

    /// The three collections as `mongoexport` writes them (relaxed Extended
    /// JSON v2, one document per line): (collection name, lines).
    pub fn export(&self) -> Vec<(&'static str, Vec<Value>)> {
        let t0 = date(1_767_225_600_000);
        let accounts = self
            .accounts
            .iter()
            .map(|(id, b)| {
                json!({"_id": id, "balance": b.to_string(), "nonce": 0,
                       "createdAt": t0, "updatedAt": t0})
            })
            .collect();
        let triangles = self
            .triangles
            .iter()
            .map(|(id, t)| {
                let centroid = [
                    t.polygon[..3].iter().map(|p| p[0]).sum::<f64>() / 3.0,
                    t.polygon[..3].iter().map(|p| p[1]).sum::<f64>() / 3.0,
                ];
                json!({"_id": id, "face": t.face, "level": t.level, "pathEncoded": "",
                       "parentId": t.parent, "childrenIds": [], "state": t.state,
                       "clicks": t.clicks, "moratoriumStartAt": null,
                       "lastClickAt": t.last_click_ms.map(date),
                       "centroid": {"type": "Point", "coordinates": centroid},
                       "polygon": {"type": "Polygon", "coordinates": [t.polygon]},
                       "createdAt": t0, "updatedAt": t0})
            })
            .collect();
        vec![
            ("accounts", accounts),
            ("triangles", triangles),
            ("triangle_events", self.events.clone()),
        ]
    }
}
