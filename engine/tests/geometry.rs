//! Mesh geometry against an independent oracle.
//!
//! The oracle is a barycentric test: p is inside the spherical triangle (a, b, c)
//! iff the ray from the origin through p meets the planar triangle abc, i.e.
//! p = αa + βb + γc with α, β, γ ≥ 0 (Cramer's rule). The engine uses edge
//! normals instead, so the two methods share no code.

use proptest::prelude::*;
use step_engine::mesh::{self, triangle_vertices, EdgeNormals, Vec3};
use step_engine::TriangleId;

fn det(a: Vec3, b: Vec3, c: Vec3) -> f64 {
    a.dot(b.cross(c))
}

/// Barycentric weights of p in (a, b, c), normalised by |det|.
fn bary(t: &[Vec3; 3], p: Vec3) -> [f64; 3] {
    let d = det(t[0], t[1], t[2]);
    [
        det(p, t[1], t[2]) / d,
        det(t[0], p, t[2]) / d,
        det(t[0], t[1], p) / d,
    ]
}

/// Oracle with a margin: Some(true/false) when clearly inside/outside.
fn oracle(t: &[Vec3; 3], p: Vec3, margin: f64) -> Option<bool> {
    let w = bary(t, p);
    let min = w.iter().copied().fold(f64::INFINITY, f64::min);
    if min > margin {
        Some(true)
    } else if min < -margin {
        Some(false)
    } else {
        None
    }
}

fn id(face: u8, digits: &[u8]) -> TriangleId {
    TriangleId::new(face, digits).expect("valid id")
}

fn unit(lat: f64, lon: f64) -> Vec3 {
    Vec3::from_lat_lon(lat, lon)
}

#[test]
fn first_vertex_is_where_the_spec_puts_it() {
    // norm(-1, φ, 0): lat 0, lon = atan2(φ, -1) = 180° − atan(φ) ≈ 121.7174744°.
    let [v0, _, _] = triangle_vertices(&id(0, &[]));
    let (lat, lon) = v0.to_lat_lon();
    let phi = (1.0 + 5f64.sqrt()) / 2.0;
    assert!(lat.abs() < 1e-12);
    assert!(
        (lon - (180.0 - phi.atan().to_degrees())).abs() < 1e-9,
        "{lon}"
    );
}

#[test]
fn faces_tile_the_sphere() {
    // Seeded grid of points: each is in at least one face, in exactly one when
    // the oracle says it is clearly inside.
    let faces: Vec<_> = (0..20).map(|f| triangle_vertices(&id(f, &[]))).collect();
    for i in 0..180 {
        for j in 0..360 {
            let p = unit(-89.5 + f64::from(i), -179.5 + f64::from(j));
            let hits: Vec<usize> = (0..20)
                .filter(|&f| EdgeNormals::new(&faces[f]).contains(p))
                .collect();
            assert!(!hits.is_empty(), "point {i},{j} in no face");
            let clear: Vec<usize> = (0..20)
                .filter(|&f| oracle(&faces[f], p, 1e-9) == Some(true))
                .collect();
            if clear.len() == 1 {
                assert_eq!(hits, clear);
            }
        }
    }
}

#[test]
fn poles_are_found_whatever_the_longitude() {
    for lat in [90.0, -90.0] {
        let mut found = None;
        for lon in [-180.0, -90.0, 0.0, 37.5, 180.0] {
            let p = unit(lat, lon);
            let hits: Vec<u8> = (0..20)
                .filter(|&f| mesh::contains(&id(f, &[]), lat, lon))
                .collect();
            assert!(!hits.is_empty(), "pole {lat} lon {lon} in no face");
            for &f in &hits {
                assert_ne!(
                    oracle(&triangle_vertices(&id(f, &[])), p, 1e-12),
                    Some(false)
                );
            }
            // The pole lies in the same faces for every spelling of its longitude.
            assert_eq!(*found.get_or_insert(hits.clone()), hits, "lon {lon}");
        }
    }
}

#[test]
fn antimeridian_triangles_contain_both_spellings_of_180() {
    // Faces and sub-triangles whose vertices straddle ±180°.
    let mut checked = 0;
    for face in 0..20u8 {
        for digits in [
            vec![],
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![3, 1],
            vec![0, 2, 1],
        ] {
            let t = id(face, &digits);
            let v = triangle_vertices(&t);
            let lons: Vec<f64> = v.iter().map(|x| x.to_lat_lon().1).collect();
            let straddles = lons.iter().any(|&l| l > 90.0) && lons.iter().any(|&l| l < -90.0);
            if !straddles {
                continue;
            }
            // Points along the meridian at the triangle's latitudes.
            let (clat, _) = mesh::centroid_lat_lon(&t);
            for dlat in [-0.5, 0.0, 0.5] {
                let lat = clat + dlat;
                let p = unit(lat, 180.0);
                if let Some(inside) = oracle(&v, p, 1e-9) {
                    assert_eq!(
                        mesh::contains(&t, lat, 180.0),
                        inside,
                        "{t} lat {lat} lon 180"
                    );
                    assert_eq!(
                        mesh::contains(&t, lat, -180.0),
                        inside,
                        "{t} lat {lat} lon -180"
                    );
                    checked += 1;
                }
            }
            // Points just either side of the meridian.
            for lon in [179.999, -179.999] {
                let p = unit(clat, lon);
                if let Some(inside) = oracle(&v, p, 1e-9) {
                    assert_eq!(mesh::contains(&t, clat, lon), inside, "{t} lon {lon}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} antimeridian points checked");
}

#[test]
fn vertices_and_edges_belong_to_the_closed_triangle() {
    for face in 0..20u8 {
        let t = triangle_vertices(&id(face, &[]));
        let e = EdgeNormals::new(&t);
        for v in t {
            assert!(e.contains(v), "vertex of face {face}");
        }
    }
}

#[test]
fn sample_points_at_the_antimeridian_are_inside() {
    // Phase 2 defect 4: 3 of the 100 samples sit in triangles crossing ±180°.
    let valid = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/step-proof-v1/sample-valid.jsonl"),
    )
    .or_else(|_| {
        std::fs::read_to_string(
            std::env::var("STEP_SHARED_DIR").unwrap_or_default() + "/sample-valid.jsonl",
        )
    })
    .expect("samples");
    let mut n = 0;
    for line in valid.lines() {
        let p = step_engine::proof::parse(line.as_bytes()).expect("parses");
        let v = triangle_vertices(&p.triangle);
        let lons: Vec<f64> = v.iter().map(|x| x.to_lat_lon().1).collect();
        if lons.iter().any(|&l| l > 90.0) && lons.iter().any(|&l| l < -90.0) {
            assert!(mesh::contains(&p.triangle, p.lat, p.lon), "{}", p.triangle);
            n += 1;
        }
    }
    assert!(n >= 3, "expected the antimeridian samples, found {n}");
}

fn arb_id() -> impl Strategy<Value = TriangleId> {
    (0u8..20, prop::collection::vec(0u8..4, 0..21)).prop_map(|(f, d)| id(f, &d))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random points: the engine agrees with the oracle wherever the oracle is sure.
    #[test]
    fn agrees_with_barycentric_oracle(t in arb_id(), lat in -90.0f64..=90.0, lon in -180.0f64..=180.0) {
        let v = triangle_vertices(&t);
        if let Some(inside) = oracle(&v, unit(lat, lon), 1e-12) {
            prop_assert_eq!(mesh::contains(&t, lat, lon), inside);
        }
    }

    /// The batched, structure-of-arrays test gives every lane exactly the
    /// single-pair answer, for batches of any fill, with points placed on
    /// vertices and edge midpoints (the exact-zero cases) as well as at random.
    #[test]
    fn contains_batch_equals_contains_lane_by_lane(
        pairs in prop::collection::vec((arb_id(), -90.0f64..=90.0, -180.0f64..=180.0, 0u8..5), 1..=mesh::LANES)
    ) {
        let mut batch = mesh::ContainsBatch::default();
        let mut want = Vec::new();
        for (t, lat, lon, place) in &pairs {
            let v = triangle_vertices(t);
            let (lat, lon) = match place {
                0..=2 => v[usize::from(*place)].to_lat_lon(),
                3 => (v[0] + v[1]).normalized().to_lat_lon(),
                _ => (*lat, *lon),
            };
            prop_assert_eq!(batch.push(t, lat, lon), want.len());
            want.push(mesh::contains(t, lat, lon));
        }
        let got = batch.run();
        for (k, w) in want.iter().enumerate() {
            prop_assert_eq!(got & (1 << k) != 0, *w, "lane {}", k);
        }
    }

    /// Points near the triangle (centroid plus a small offset) hit the edges' neighbourhood.
    #[test]
    fn agrees_near_the_triangle(t in arb_id(), a in 0.0f64..1.0, b in 0.0f64..1.0, s in 0.5f64..1.5) {
        let [v0, v1, v2] = triangle_vertices(&t);
        // A point on the plane through the vertices, scaled around the centroid.
        let c = v0 + v1 + v2;
        let q = Vec3::new(
            v0.x * a + v1.x * b + v2.x * (1.0 - a - b) * s + c.x * 0.01,
            v0.y * a + v1.y * b + v2.y * (1.0 - a - b) * s + c.y * 0.01,
            v0.z * a + v1.z * b + v2.z * (1.0 - a - b) * s + c.z * 0.01,
        ).normalized();
        if let Some(inside) = oracle(&[v0, v1, v2], q, 1e-9) {
            prop_assert_eq!(EdgeNormals::new(&[v0, v1, v2]).contains(q), inside);
        }
    }

    /// A point inside a parent is inside at least one child; clearly inside one child
    /// means inside the parent.
    #[test]
    fn children_partition_the_parent(t in arb_id(), a in 0.0f64..1.0, b in 0.0f64..1.0) {
        prop_assume!(t.level() < 21);
        let [v0, v1, v2] = triangle_vertices(&t);
        let (a, b) = if a + b > 1.0 { (1.0 - a, 1.0 - b) } else { (a, b) };
        let g = 1.0 - a - b;
        let p = Vec3::new(v0.x*a + v1.x*b + v2.x*g, v0.y*a + v1.y*b + v2.y*g, v0.z*a + v1.z*b + v2.z*g).normalized();
        let parent = EdgeNormals::new(&[v0, v1, v2]).contains(p);
        let kids: Vec<bool> = (0..4).map(|k| EdgeNormals::new(&triangle_vertices(&t.child(k).unwrap())).contains(p)).collect();
        if parent {
            prop_assert!(kids.iter().any(|&k| k), "in parent {} but no child", t);
        }
        for k in 0..4u8 {
            if oracle(&triangle_vertices(&t.child(k).unwrap()), p, 1e-9) == Some(true) {
                prop_assert!(parent);
            }
        }
    }
}

#[test]
fn haversine_known_distances() {
    // A quarter of the equator: π/2 · R.
    let q = mesh::haversine_m(0.0, 0.0, 0.0, 90.0);
    assert!((q - std::f64::consts::FRAC_PI_2 * 6_371_000.0).abs() < 1e-6);
    // Across the antimeridian: 0.002° of longitude at the equator, not 359.998°.
    let d = mesh::haversine_m(0.0, 179.999, 0.0, -179.999);
    assert!(
        (d - 0.002f64.to_radians() * 6_371_000.0).abs() < 1e-3,
        "{d}"
    );
    assert_eq!(mesh::haversine_m(12.0, 34.0, 12.0, 34.0), 0.0);
}
