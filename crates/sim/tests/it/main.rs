//! The simulator over many seeds. A failing run prints its seed;
//! `SEED=n cargo test -p caravan-sim` replays exactly that run.

use caravan_replication::RecordStore;
use caravan_sim::{infallible, invariants, SimConfig, Simulation};

/// Seeds per `cargo test`; each is 20 nodes over four simulated minutes.
const SEEDS: u64 = 8;

type Check = fn(&Simulation) -> Result<(), String>;

const CHECKS: &[(&str, Check)] = &[
    ("records_converge", invariants::records_converge),
    ("catalogs_converge", invariants::catalogs_converge),
    ("equivocation_freezes_everywhere", invariants::equivocation_freezes_everywhere),
    ("forged_records_rejected", invariants::forged_records_rejected),
];

fn seeds() -> Vec<u64> {
    match std::env::var("SEED") {
        Ok(seed) => vec![seed.parse().expect("SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    }
}

#[test]
fn lossy_partitioned_churning_networks_converge() {
    for seed in seeds() {
        let mut sim = Simulation::new(seed, SimConfig::default());
        sim.run();
        for (name, check) in CHECKS {
            if let Err(problem) = check(&sim) {
                panic!("seed {seed}: {name}: {problem}\nreplay with: SEED={seed} cargo test -p caravan-sim");
            }
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let mut sim = Simulation::new(seed, SimConfig { end_ms: 60_000, ..SimConfig::default() });
        sim.run();
        let items: Vec<_> = sim.stores().map(|s| infallible(s.items())).collect();
        let counters: Vec<_> = sim.replicas().map(|r| r.counters().clone()).collect();
        (items, counters)
    };
    assert_eq!(run(42), run(42));
}

#[test]
fn without_enough_time_the_checks_do_fail() {
    // The checkers are not vacuous: cut a run short, mid-partition, and
    // the nodes disagree.
    let mut sim = Simulation::new(3, SimConfig { end_ms: 30_000, ..SimConfig::default() });
    sim.run();
    assert!(invariants::records_converge(&sim).is_err());
}
