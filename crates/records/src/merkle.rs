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
}
