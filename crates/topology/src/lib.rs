//! Seeded cluster layouts: which of `n` peers dial which.
//!
//! [`generate`] builds a connected undirected graph in which every peer has
//! at least `degree` neighbours, the shape of the proof of concept's
//! experiment, from a seed, so a layout can be shared as a number. It
//! starts from a random spanning tree (connected by construction; each peer
//! joins the less connected of two random earlier peers), then
//! gives every peer still short of `degree` edges to random peers, lowest
//! degree first, which keeps degrees close to `degree` instead of piling
//! edges on a few hubs. [`Graph::to_text`] writes `graph.txt`: one line per
//! edge, `i j`, 0-based, `i < j`, sorted; [`Graph::parse`] reads it back.
//!
//! Pure: the only randomness is `model::rng::SplitMix64` seeded by the
//! caller, so a seed means the same graph on every version of Caravan.

use caravan_model::rng::SplitMix64;
use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write;

/// Peers one layout may have: a local cluster runs a process per peer.
pub const PEERS_MAX: u32 = 100_000;
/// Random partner draws before scanning every peer for one.
const RANDOM_DRAWS_MAX: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("a topology needs at least one peer")]
    NoPeers,
    #[error("at most {PEERS_MAX} peers")]
    TooManyPeers,
    #[error("degree {degree} needs more than {degree} peers, got {peers}")]
    DegreeTooHigh { peers: u32, degree: u32 },
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
}

/// An undirected graph over peers `0..peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    peers: u32,
    /// Each edge once, as `(i, j)` with `i < j`.
    edges: BTreeSet<(u32, u32)>,
}

/// A connected graph of `peers` peers where each has at least `degree`
/// neighbours, the same for the same seed.
pub fn generate(peers: u32, degree: u32, seed: u64) -> Result<Graph, TopologyError> {
    if peers == 0 {
        return Err(TopologyError::NoPeers);
    }
    if peers > PEERS_MAX {
        return Err(TopologyError::TooManyPeers);
    }
    if degree >= peers {
        return Err(TopologyError::DegreeTooHigh { peers, degree });
    }
    let mut rng = SplitMix64::new(seed);
    let mut graph = Graph { peers, edges: BTreeSet::new() };
    let mut degrees = vec![0u32; peers as usize];

    // A random spanning tree: in a shuffled order, each peer joins the
    // less connected of two peers already placed ("power of two choices"),
    // so the tree grows no hubs.
    let mut order: Vec<u32> = (0..peers).collect();
    rng.shuffle(&mut order);
    for idx in 1..order.len() {
        let first = order[rng.below(idx as u64) as usize];
        let second = order[rng.below(idx as u64) as usize];
        let earlier = if degrees[second as usize] < degrees[first as usize] { second } else { first };
        graph.add(order[idx], earlier, &mut degrees);
    }

    // Top up every peer short of `degree`, the least connected first. A
    // partner is the less connected of two random peers it is not yet
    // linked to; only when random draws keep missing (a dense graph) is
    // every peer scanned.
    let mut short: BTreeSet<(u32, u32)> =
        (0..peers).filter(|&p| degrees[p as usize] < degree).map(|p| (degrees[p as usize], p)).collect();
    while let Some((_, peer)) = short.pop_first() {
        let eligible = |graph: &Graph, other: u32| other != peer && !graph.has_edge(peer, other);
        let mut draw = || (0..RANDOM_DRAWS_MAX).map(|_| rng.below(peers as u64) as u32).find(|&o| eligible(&graph, o));
        let other = match (draw(), draw()) {
            (Some(a), Some(b)) => {
                if degrees[b as usize] < degrees[a as usize] {
                    b
                } else {
                    a
                }
            }
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => {
                // `degree < peers` leaves a candidate for a peer short of `degree`.
                let candidates = (0..peers).filter(|&o| eligible(&graph, o));
                candidates.min_by_key(|&o| (degrees[o as usize], o)).expect("a peer short of degree has a candidate")
            }
        };
        short.remove(&(degrees[other as usize], other));
        graph.add(peer, other, &mut degrees);
        for p in [peer, other] {
            if degrees[p as usize] < degree {
                short.insert((degrees[p as usize], p));
            }
        }
    }
    Ok(graph)
}

impl Graph {
    pub fn peers(&self) -> u32 {
        self.peers
    }

    pub fn edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.edges.iter().copied()
    }

    pub fn has_edge(&self, a: u32, b: u32) -> bool {
        self.edges.contains(&(a.min(b), a.max(b)))
    }

    /// The neighbours of `peer`, ascending.
    pub fn neighbours(&self, peer: u32) -> Vec<u32> {
        self.edges
            .iter()
            .filter_map(|&(i, j)| match () {
                _ if i == peer => Some(j),
                _ if j == peer => Some(i),
                _ => None,
            })
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .collect()
    }

    pub fn degrees(&self) -> Vec<u32> {
        let mut degrees = vec![0u32; self.peers as usize];
        for &(i, j) in &self.edges {
            degrees[i as usize] += 1;
            degrees[j as usize] += 1;
        }
        degrees
    }

    pub fn is_connected(&self) -> bool {
        self.distances_from(0).iter().all(Option::is_some)
    }

    /// The longest shortest path between two peers; `None` if disconnected.
    pub fn diameter(&self) -> Option<u32> {
        (0..self.peers).map(|p| self.distances_from(p).into_iter().max().flatten()).try_fold(0, |d, m| Some(d.max(m?)))
    }

    fn distances_from(&self, start: u32) -> Vec<Option<u32>> {
        let adjacency = self.adjacency();
        let mut distance = vec![None; self.peers as usize];
        distance[start as usize] = Some(0);
        let mut queue = VecDeque::from([start]);
        while let Some(peer) = queue.pop_front() {
            let next = distance[peer as usize].expect("queued peers have a distance") + 1;
            for &other in &adjacency[peer as usize] {
                if distance[other as usize].is_none() {
                    distance[other as usize] = Some(next);
                    queue.push_back(other);
                }
            }
        }
        distance
    }

    fn adjacency(&self) -> Vec<Vec<u32>> {
        let mut adjacency = vec![Vec::new(); self.peers as usize];
        for &(i, j) in &self.edges {
            adjacency[i as usize].push(j);
            adjacency[j as usize].push(i);
        }
        adjacency
    }

    fn add(&mut self, a: u32, b: u32, degrees: &mut [u32]) {
        assert_ne!(a, b);
        if self.edges.insert((a.min(b), a.max(b))) {
            degrees[a as usize] += 1;
            degrees[b as usize] += 1;
        }
    }

    /// `graph.txt`: one edge per line, `i j`.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.edges.len() * 8);
        for (i, j) in &self.edges {
            writeln!(out, "{i} {j}").expect("writing to a String");
        }
        out
    }

    /// Reads `graph.txt`. Peers are numbered from 0 to the highest index
    /// named; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Graph, TopologyError> {
        let mut edges = BTreeSet::new();
        let mut highest = None;
        for (idx, line) in text.lines().enumerate() {
            let line_no = idx + 1;
            let content = line.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let err = |reason: &str| TopologyError::Parse { line: line_no, reason: reason.into() };
            let mut fields = content.split_whitespace();
            let (Some(a), Some(b), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(err("expected two peer indices, `i j`"));
            };
            let a: u32 = a.parse().map_err(|_| err("peer indices are non-negative integers"))?;
            let b: u32 = b.parse().map_err(|_| err("peer indices are non-negative integers"))?;
            if a == b {
                return Err(err("a peer cannot be its own neighbour"));
            }
            if a.max(b) >= PEERS_MAX {
                return Err(err(&format!("peer indices stay below {PEERS_MAX}")));
            }
            highest = highest.max(Some(a.max(b)));
            edges.insert((a.min(b), a.max(b)));
        }
        let peers = highest.map(|h| h + 1).ok_or(TopologyError::NoPeers)?;
        Ok(Graph { peers, edges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn large_and_dense_layouts() {
        let big = generate(PEERS_MAX, 3, 1).unwrap();
        assert!(big.degrees().iter().all(|&d| d >= 3));
        let complete = generate(12, 11, 1).unwrap();
        assert_eq!(complete.edges().count(), 12 * 11 / 2);
    }

    #[test]
    fn a_thousand_peers_stay_balanced() {
        let graph = generate(1000, 3, 7).unwrap();
        let degrees = graph.degrees();
        assert!(graph.is_connected());
        assert!(degrees.iter().all(|&d| (3..=6).contains(&d)), "{:?}", degrees.iter().max());
        assert!(graph.diameter().unwrap() <= 12, "diameter {:?}", graph.diameter());
    }

    #[test]
    fn the_seed_experiment_layout() {
        let graph = generate(10, 3, 1).unwrap();
        assert!(graph.is_connected());
        assert!(graph.degrees().iter().all(|&d| d >= 3), "{:?}", graph.degrees());
        assert_eq!(generate(10, 3, 1).unwrap(), graph, "same seed, same graph");
        assert_ne!(generate(10, 3, 2).unwrap(), graph, "another seed, another graph");
        assert_eq!(Graph::parse(&graph.to_text()).unwrap(), graph);
    }

    #[test]
    fn impossible_layouts_are_refused() {
        assert_eq!(generate(0, 0, 1), Err(TopologyError::NoPeers));
        assert_eq!(generate(3, 3, 1), Err(TopologyError::DegreeTooHigh { peers: 3, degree: 3 }));
        assert_eq!(generate(PEERS_MAX + 1, 1, 1), Err(TopologyError::TooManyPeers));
        let single = generate(1, 0, 1).unwrap();
        assert_eq!((single.peers(), single.edges().count()), (1, 0));
    }

    #[test]
    fn graph_files_are_checked() {
        assert_eq!(Graph::parse("# two peers\n0 1\n\n1 0  # again\n").unwrap().edges().count(), 1);
        for (text, line) in
            [("0 1\n1 1\n", 2), ("0\n", 1), ("0 1 2\n", 1), ("a b\n", 1), ("0 -1\n", 1), ("0 100000\n", 1)]
        {
            assert!(matches!(Graph::parse(text), Err(TopologyError::Parse { line: l, .. }) if l == line), "{text:?}");
        }
        assert_eq!(Graph::parse("# nothing\n"), Err(TopologyError::NoPeers));
    }

    proptest! {
        #[test]
        fn every_layout_is_connected_with_the_minimum_degree(peers in 1u32..120, degree in 0u32..8, seed: u64) {
            prop_assume!(degree < peers);
            let graph = generate(peers, degree, seed).unwrap();
            prop_assert!(graph.is_connected());
            let degrees = graph.degrees();
            prop_assert!(degrees.iter().all(|&d| d >= degree), "{:?}", degrees);
            // Two choices in the tree and lowest-first top-ups keep hubs
            // from forming (200 seeds at 120 peers: never above degree + 5).
            let max = degrees.iter().copied().max().unwrap_or(0);
            prop_assert!(max <= degree.max(3) + 3, "max degree {} for degree {}", max, degree);
            prop_assert!(graph.edges().all(|(i, j)| i < j && j < peers));
        }
    }
}
