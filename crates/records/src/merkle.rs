//! The BLAKE3 Merkle tree over a bundle's records (see `BundleProof` in
//! records.proto for the exact shape).

pub type Hash = [u8; 32];

pub fn leaf_hash(body: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]);
    hasher.update(body);
    *hasher.finalize().as_bytes()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x01]);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

/// The root and every leaf's inclusion path. `leaves` is not empty.
pub fn build(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    assert!(!leaves.is_empty());
    let mut paths = vec![Vec::new(); leaves.len()];
    let mut level = leaves.to_vec();
    // `positions[i]` is leaf i's index on the current level.
    let mut positions: Vec<usize> = (0..leaves.len()).collect();
    while level.len() > 1 {
        for (leaf, pos) in positions.iter_mut().enumerate() {
            let sibling = *pos ^ 1;
            if sibling < level.len() {
                paths[leaf].push(level[sibling]);
            }
            *pos /= 2;
        }
        level =
            level.chunks(2).map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] }).collect();
    }
    (level[0], paths)
}

/// The root a leaf's path leads to; `None` if the path has the wrong length.
pub fn root_from_path(leaf: Hash, mut index: u32, mut count: u32, path: &[Hash]) -> Option<Hash> {
    if index >= count {
        return None;
    }
    let mut hash = leaf;
    let mut siblings = path.iter();
    while count > 1 {
        if index % 2 == 1 {
            hash = node_hash(siblings.next()?, &hash);
        } else if index + 1 < count {
            hash = node_hash(&hash, siblings.next()?);
        }
        index /= 2;
        count = count.div_ceil(2);
    }
    siblings.next().is_none().then_some(hash)
}

/// The levels of a tree of `count` leaves above a run `[first, end)`: each
/// level's node count and the run's ancestors `[a, b)` there, from the
/// leaves up to (not including) the root's level.
fn run_levels(first: u32, end: u32, count: u32) -> impl Iterator<Item = (u32, u32, u32)> {
    let mut level = Some((count, first, end));
    std::iter::from_fn(move || {
        let (count, a, b) = level?;
        if count <= 1 {
            return None;
        }
        level = Some((count.div_ceil(2), a / 2, b.div_ceil(2)));
        Some((count, a, b))
    })
}

/// Which outside nodes a level needs: left of `a` when `a` is a right
/// child, right of `b - 1` when that is a left child with a sibling.
fn frontier_needs(count: u32, a: u32, b: u32) -> (bool, bool) {
    (a % 2 == 1, b % 2 == 1 && b < count)
}

/// The frontier of the run `[first, end)` (see `BundleRun` in
/// records.proto), taken from its first and last leaves' paths; `None` if
/// the paths do not fit the tree.
pub fn run_frontier(first: u32, end: u32, count: u32, first_path: &[Hash], last_path: &[Hash]) -> Option<Vec<Hash>> {
    if first >= end || end > count {
        return None;
    }
    let (mut first_siblings, mut last_siblings) = (first_path.iter(), last_path.iter());
    let mut frontier = Vec::new();
    for (count, a, b) in run_levels(first, end, count) {
        // Each boundary leaf's path has an entry at every level where its
        // ancestor has a sibling.
        let first_entry = if a % 2 == 1 || a + 1 < count { Some(first_siblings.next()?) } else { None };
        let last = b - 1;
        let last_entry = if last % 2 == 1 || last + 1 < count { Some(last_siblings.next()?) } else { None };
        let (left, right) = frontier_needs(count, a, b);
        if left {
            frontier.push(*first_entry?);
        }
        if right {
            frontier.push(*last_entry?);
        }
    }
    (first_siblings.next().is_none() && last_siblings.next().is_none()).then_some(frontier)
}

/// Every leaf's path of the run whose leaf hashes are `leaves`, starting at
/// `first` in a tree of `count`; `None` if the frontier does not fit.
pub fn run_paths(first: u32, count: u32, leaves: &[Hash], frontier: &[Hash]) -> Option<Vec<Vec<Hash>>> {
    let end = first.checked_add(u32::try_from(leaves.len()).ok()?)?;
    if leaves.is_empty() || end > count {
        return None;
    }
    let mut frontier = frontier.iter();
    let mut known = leaves.to_vec();
    let mut paths = vec![Vec::new(); leaves.len()];
    for (depth, (count, a, b)) in run_levels(first, end, count).enumerate() {
        let (needs_left, needs_right) = frontier_needs(count, a, b);
        let left = if needs_left { Some(*frontier.next()?) } else { None };
        let right = if needs_right { Some(*frontier.next()?) } else { None };
        // The run's ancestors at this level, and the frontier beside them.
        let node = |index: u32| -> Option<Hash> {
            if (a..b).contains(&index) {
                Some(known[(index - a) as usize])
            } else if index + 1 == a {
                left
            } else if index == b {
                right
            } else {
                None
            }
        };
        for (offset, path) in paths.iter_mut().enumerate() {
            let sibling = ((first + offset as u32) >> depth) ^ 1;
            if sibling < count {
                path.push(node(sibling)?);
            }
        }
        let parent = |p: u32| match 2 * p + 1 < count {
            true => Some(node_hash(&node(2 * p)?, &node(2 * p + 1)?)),
            false => node(2 * p),
        };
        known = (a / 2..b.div_ceil(2)).map(parent).collect::<Option<_>>()?;
    }
    frontier.next().is_none().then_some(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_proves_membership_for_every_size() {
        for n in 1..=33u32 {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
            let (root, paths) = build(&leaves);
            for (i, path) in paths.iter().enumerate() {
                assert_eq!(root_from_path(leaves[i], i as u32, n, path), Some(root), "n={n} i={i}");
                if n > 1 {
                    let other = (i + 1) % n as usize;
                    assert_ne!(root_from_path(leaves[i], other as u32, n, path), Some(root));
                    assert_eq!(root_from_path(leaves[i], i as u32, n, &path[1..]), None);
                }
            }
        }
    }

    fn leaves(count: u32) -> Vec<Hash> {
        (0..count).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn a_run_and_its_frontier_give_back_every_path() {
        for count in 1..=40u32 {
            let all = leaves(count);
            let (_, paths) = build(&all);
            for first in 0..count {
                for end in first + 1..=count {
                    let (a, z) = (first as usize, end as usize - 1);
                    let frontier = run_frontier(first, end, count, &paths[a], &paths[z]).expect("fits");
                    let rebuilt = run_paths(first, count, &all[a..=z], &frontier).expect("fits");
                    assert_eq!(rebuilt, paths[a..=z], "count {count}, run {first}..{end}");
                    assert!(frontier.len() <= 2 * 6, "at most two hashes a level");
                }
            }
        }
    }

    #[test]
    fn a_frontier_of_the_wrong_length_is_refused() {
        let all = leaves(13);
        let (_, paths) = build(&all);
        let frontier = run_frontier(3, 9, 13, &paths[3], &paths[8]).expect("fits");
        assert!(run_paths(3, 13, &all[3..9], &frontier[1..]).is_none());
        let mut longer = frontier.clone();
        longer.push([7; 32]);
        assert!(run_paths(3, 13, &all[3..9], &longer).is_none());
        assert!(run_paths(3, 8, &all[3..9], &frontier).is_none(), "the run overruns the tree");
    }
}
