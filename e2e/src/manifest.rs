//! Scenarios as data (in the manner of CometBFT's e2e manifests).
//!
//! ```toml
//! name = "partition-2-2"
//! validators = 4
//! duration_s = 40          # the timeline: load and perturbations lie within it
//! settle_s = 30            # afterwards, at most this long for finality and convergence
//! set = ["consensus.propose_timeout_ms=3000"]   # `--set` for every validator
//!
//! [load]
//! rate = 50                # proofs/s, POST /proof/submit?wait=false
//! start_s = 2
//! stop_s = 35
//! targets = [0, 1, 2, 3]   # round-robin; default: every validator
//!
//! [[perturb]]
//! at_s = 10
//! kind = "partition"       # kill restart pause resume disconnect partition heal delay loss clock_skew
//! groups = [[0, 1], [2, 3]]
//!
//! [expect]
//! lost_max = 0
//! halt = { from_s = 10, to_s = 25 }
//! resume = { after_s = 25, within_s = 10 }
//! readiness = [{ node = 3, not_ready_within = [12, 21], ready_within = [23, 33] }]   # /status `ready`
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub validators: usize,
    #[serde(default)]
    pub seed: Option<String>,
    pub duration_s: f64,
    #[serde(default = "default_settle")]
    pub settle_s: f64,
    #[serde(default)]
    pub set: Vec<String>,
    #[serde(default)]
    pub load: Option<LoadCfg>,
    #[serde(default)]
    pub perturb: Vec<Perturb>,
    #[serde(default)]
    pub expect: Expect,
    /// Run a real Prometheus with `docs/ops/alerts.yml` scraping every
    /// validator (scrape and rule evaluation every `prometheus_interval_s`).
    #[serde(default)]
    pub prometheus: bool,
    #[serde(default)]
    pub prometheus_interval_s: Option<u32>,
    /// Validators that misbehave on purpose (`step node --byzantine KIND`;
    /// needs a `step` built with the `byzantine` feature).
    #[serde(default)]
    pub byzantine: Vec<ByzantineNode>,
    /// An HTTP flood from many source addresses (`crate::flood`).
    #[serde(default)]
    pub flood: Option<FloodCfg>,
    /// A hostile peer on the validators' P2P port (`crate::hostile`).
    #[serde(default)]
    pub hostile: Option<HostileCfg>,
}

/// `[flood]`: `rate` requests/s from `sources` addresses, `start_s`–`stop_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodCfg {
    pub rate: f64,
    pub sources: usize,
    pub start_s: f64,
    pub stop_s: f64,
    /// Default: every validator.
    #[serde(default)]
    pub targets: Option<Vec<usize>>,
}

/// What the flood must have got: no forged proof accepted, at least
/// `refused_min_fraction` refused 429 `RATE_LIMITED`, at most
/// `unanswered_max_fraction` unanswered, refusals' p99 within `refused_p99_ms_max`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodExpect {
    pub refused_min_fraction: f64,
    #[serde(default)]
    pub unanswered_max_fraction: Option<f64>,
    #[serde(default)]
    pub refused_p99_ms_max: Option<f64>,
}

/// `[hostile]`: from `start_s` to `stop_s`, each of `targets` (default all)
/// gets `connections` connections at a time on its P2P port, each sending
/// junk (`crate::hostile::Junk`, in turn) until the validator closes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostileCfg {
    pub start_s: f64,
    pub stop_s: f64,
    pub connections: usize,
    #[serde(default)]
    pub targets: Option<Vec<usize>>,
}

/// What the validators did with the hostile connections: each closed
/// within `closed_within_s` (none held open), at least `min_attempts` made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostileExpect {
    pub closed_within_s: f64,
    pub min_attempts: usize,
}

/// One byzantine validator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByzantineNode {
    pub node: usize,
    /// `equivocate`, `bad-signatures` or `gps-spoof`.
    pub kind: String,
}

/// What the honest validators must have seen of a byzantine one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByzantineExpect {
    /// The misbehaving validator.
    pub node: usize,
    /// `GET /evidence` on each of these names it in a double-vote record.
    #[serde(default)]
    pub evidence_on: Vec<usize>,
    /// Each of these logged its batches as invalid and muted its gossip.
    #[serde(default)]
    pub muted_on: Vec<usize>,
}

fn default_settle() -> f64 {
    30.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadCfg {
    pub rate: f64,
    pub start_s: f64,
    pub stop_s: f64,
    #[serde(default)]
    pub targets: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// SIGKILL `node`; with `after_accepted`, as soon as it has answered that
    /// many 202s (at most 30 s after `at_s`).
    Kill,
    /// Start `node` again (after a kill).
    Restart,
    /// SIGSTOP `node` (or, with `proposer = true`, the proposer of the next
    /// height); with `for_s`, SIGCONT that long after.
    Pause,
    /// SIGCONT `node`.
    Resume,
    /// Cut every link of `node`.
    Disconnect,
    /// Cut every link between different `groups`.
    Partition,
    /// Restore every cut link (delay and loss stay).
    Heal,
    /// `ms` ± `jitter_ms` (uniform) on every validator-to-validator link, each direction.
    Delay,
    /// `percent` % of packets dropped on every validator-to-validator link.
    Loss,
    /// Run `node` with its wall clock moved by `offset` (libfaketime, e.g.
    /// "+2s"); at `at_s = 0` from its first start, else by a restart.
    ClockSkew,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Perturb {
    pub at_s: f64,
    pub kind: Kind,
    #[serde(default)]
    pub node: Option<usize>,
    #[serde(default)]
    pub proposer: bool,
    #[serde(default)]
    pub for_s: Option<f64>,
    #[serde(default)]
    pub groups: Option<Vec<Vec<usize>>>,
    #[serde(default)]
    pub ms: Option<f64>,
    #[serde(default)]
    pub jitter_ms: Option<f64>,
    #[serde(default)]
    pub percent: Option<f64>,
    #[serde(default)]
    pub offset: Option<String>,
    #[serde(default)]
    pub after_accepted: Option<usize>,
}

/// A time window of the timeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from_s: f64,
    pub to_s: f64,
    /// Heights decided within this long after `from_s` still count as before
    /// (a height whose votes were already on the wire). Default 1 s.
    #[serde(default)]
    pub grace_s: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    pub after_s: f64,
    pub within_s: f64,
    /// Default: every validator.
    #[serde(default)]
    pub nodes: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Each of these validators must progress; absent: the chain (the
    /// highest height any validator reported).
    #[serde(default)]
    pub nodes: Option<Vec<usize>>,
    pub from_s: f64,
    pub to_s: f64,
    pub min_heights: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Proofs answered 202 and never finalized. Default 0.
    #[serde(default)]
    pub lost_max: Option<usize>,
    /// Of the proofs sent, at least this fraction answered 202 (so that a
    /// scenario cannot pass without load). Default 0.5.
    #[serde(default)]
    pub accepted_min_fraction: Option<f64>,
    /// No validator finalizes a new height in this window.
    #[serde(default)]
    pub halt: Option<Window>,
    /// Every listed validator finalizes a new height within `within_s` after `after_s`.
    #[serde(default)]
    pub resume: Option<Resume>,
    #[serde(default)]
    pub progress: Vec<Progress>,
    /// p99 of 202 → first `/events` block holding the proof.
    #[serde(default)]
    pub finality_p99_max_s: Option<f64>,
    /// Alerts of the real Prometheus (needs `prometheus = true`).
    #[serde(default)]
    pub alert: Vec<AlertExpect>,
    /// Every validator closes its connections across each `partition`
    /// before the following `heal` (logs `Disconnected from peer`).
    #[serde(default)]
    pub links_closed_before_heal: bool,
    /// Checks of the validators named in `byzantine`.
    #[serde(default)]
    pub byzantine: Vec<ByzantineExpect>,
    /// What a validator's `/status` `ready` (= `/health/ready`) says when.
    #[serde(default)]
    pub readiness: Vec<ReadyExpect>,
    #[serde(default)]
    pub flood: Option<FloodExpect>,
    #[serde(default)]
    pub hostile: Option<HostileExpect>,
}

/// A validator's readiness: some `/status` poll in `not_ready_within`
/// says not ready, and some poll in `ready_within` says ready (seconds of
/// the timeline; either may be absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyExpect {
    pub node: usize,
    #[serde(default)]
    pub not_ready_within: Option<[f64; 2]>,
    #[serde(default)]
    pub ready_within: Option<[f64; 2]>,
}

/// An alert fires in a window, not before it, and clears afterwards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertExpect {
    pub name: String,
    /// It is `firing` on at least `min_instances` instances at once at some
    /// time in [from, to] (seconds of the timeline), and on none before `from`.
    pub fires_between: [f64; 2],
    /// Default: every validator.
    #[serde(default)]
    pub min_instances: Option<usize>,
    /// From this time to the end of the timeline it fires on no instance.
    #[serde(default)]
    pub clear_by_s: Option<f64>,
}

impl Manifest {
    pub fn parse(text: &str) -> anyhow::Result<Manifest> {
        let m: Manifest = toml::from_str(text)?;
        m.check()?;
        Ok(m)
    }

    pub fn load(path: &std::path::Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn check(&self) -> anyhow::Result<()> {
        let n = self.validators;
        anyhow::ensure!((1..=50).contains(&n), "validators must be 1-50");
        let node_ok = |i: &usize| *i < n;
        for p in &self.perturb {
            anyhow::ensure!(
                p.at_s >= 0.0 && p.at_s <= self.duration_s,
                "{p:?}: at_s outside the timeline"
            );
            let needs_node = matches!(
                p.kind,
                Kind::Kill | Kind::Restart | Kind::Resume | Kind::Disconnect | Kind::ClockSkew
            ) || (p.kind == Kind::Pause && !p.proposer);
            if needs_node {
                anyhow::ensure!(
                    p.node.as_ref().is_some_and(node_ok),
                    "{p:?}: needs node < {n}"
                );
            }
            match p.kind {
                Kind::Partition => {
                    let g = p
                        .groups
                        .as_ref()
                        .ok_or_else(|| anyhow::anyhow!("{p:?}: needs groups"))?;
                    anyhow::ensure!(g.iter().flatten().all(node_ok), "{p:?}: node out of range");
                }
                Kind::Delay => anyhow::ensure!(p.ms.is_some(), "{p:?}: needs ms"),
                Kind::Loss => anyhow::ensure!(
                    p.percent.is_some_and(|x| (0.0..=100.0).contains(&x)),
                    "{p:?}: needs percent 0-100"
                ),
                Kind::ClockSkew => anyhow::ensure!(p.offset.is_some(), "{p:?}: needs offset"),
                _ => {}
            }
        }
        anyhow::ensure!(
            self.expect.readiness.iter().all(|r| r.node < n),
            "expect.readiness: node out of range"
        );
        anyhow::ensure!(
            self.expect.alert.is_empty() || self.prometheus,
            "expect.alert needs prometheus = true"
        );
        if let Some(l) = &self.load {
            anyhow::ensure!(
                l.rate > 0.0 && l.stop_s > l.start_s,
                "load: rate > 0, stop_s > start_s"
            );
            anyhow::ensure!(
                l.stop_s <= self.duration_s,
                "load: stop_s beyond duration_s"
            );
            if let Some(t) = &l.targets {
                anyhow::ensure!(!t.is_empty() && t.iter().all(node_ok), "load: targets");
            }
        }
        if let Some(f) = &self.flood {
            anyhow::ensure!(
                f.rate > 0.0 && f.stop_s > f.start_s && f.stop_s <= self.duration_s,
                "flood: rate > 0, start_s < stop_s ≤ duration_s"
            );
            anyhow::ensure!(
                (1..=crate::flood::MAX_SOURCES).contains(&f.sources),
                "flood: sources 1-{}",
                crate::flood::MAX_SOURCES
            );
            anyhow::ensure!(
                f.targets
                    .as_ref()
                    .is_none_or(|t| !t.is_empty() && t.iter().all(node_ok)),
                "flood: targets"
            );
        }
        if let Some(h) = &self.hostile {
            anyhow::ensure!(
                h.stop_s > h.start_s && h.stop_s <= self.duration_s && h.connections > 0,
                "hostile: start_s < stop_s ≤ duration_s, connections > 0"
            );
            anyhow::ensure!(
                h.targets
                    .as_ref()
                    .is_none_or(|t| !t.is_empty() && t.iter().all(node_ok)),
                "hostile: targets"
            );
        }
        anyhow::ensure!(
            self.expect.flood.is_none() || self.flood.is_some(),
            "expect.flood needs [flood]"
        );
        anyhow::ensure!(
            self.expect.hostile.is_none() || self.hostile.is_some(),
            "expect.hostile needs [hostile]"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_manifest_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("e2e/manifests") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                let m = Manifest::load(&p).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    p.file_stem().and_then(|s| s.to_str()),
                    Some(m.name.as_str()),
                    "a manifest's name is its file name"
                );
                n += 1;
            }
        }
        assert!(n >= 7, "only {n} manifests");
    }

    #[test]
    fn bad_manifests_are_refused() {
        let base = "name = \"x\"\nvalidators = 4\nduration_s = 10\n";
        assert!(Manifest::parse(base).is_ok());
        for bad in [
            "[[perturb]]\nat_s = 1\nkind = \"kill\"\n",
            "[[perturb]]\nat_s = 1\nkind = \"kill\"\nnode = 4\n",
            "[[perturb]]\nat_s = 11\nkind = \"heal\"\n",
            "[[perturb]]\nat_s = 1\nkind = \"partition\"\n",
            "[[perturb]]\nat_s = 1\nkind = \"loss\"\npercent = 200\n",
            "[[perturb]]\nat_s = 1\nkind = \"melt\"\n",
            "[load]\nrate = 10\nstart_s = 5\nstop_s = 20\n",
            "typo = 1\n",
            "[flood]\nrate = 10\nsources = 200\nstart_s = 1\nstop_s = 5\n",
            "[expect]\nflood = { refused_min_fraction = 0.5 }\n",
            "[hostile]\nstart_s = 1\nstop_s = 5\nconnections = 0\n",
        ] {
            assert!(Manifest::parse(&format!("{base}{bad}")).is_err(), "{bad}");
        }
    }
}
