//! The set reconciliation compares: the `(time, id)` of every stored
//! record, in order. Read from the store once, then kept in step record by
//! record, so a node holding millions of records never reads them all
//! again because one changed.
//!
//! Items live in sorted chunks behind `Arc`s: a negentropy session takes a
//! [`Snapshot`] (one `Arc` per chunk) and reads it while the set moves on;
//! a change copies only the one chunk a session still holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use negentropy::{Bound, Error, Id, Item, NegentropyStorageBase};

use crate::RecordId;

/// Chunks split beyond this many items: small enough that a copy is
/// cheap, large enough that the chunk list stays short (~20,000 chunks
/// for 10 million records).
const CHUNK_MAX: usize = 1_024;

pub(crate) fn item(time_ms: u64, id: &RecordId) -> Item {
    Item::with_timestamp_and_id(time_ms, Id::from_byte_array(id.0))
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Items {
    /// Sorted, none empty, each chunk's items all before the next chunk's.
    chunks: Vec<Arc<Vec<Item>>>,
    len: usize,
}

impl Items {
    /// From items in any order (duplicates collapse).
    pub(crate) fn new(mut items: Vec<Item>) -> Items {
        items.sort_unstable();
        items.dedup();
        let len = items.len();
        let chunks = items.chunks(CHUNK_MAX / 2).map(|chunk| Arc::new(chunk.to_vec())).collect();
        Items { chunks, len }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn contains(&self, item: &Item) -> bool {
        let at = self.chunk_for(item);
        self.chunks.get(at).is_some_and(|chunk| chunk.binary_search(item).is_ok())
    }

    /// Up to `limit` items after `cursor` (from the first without one), in
    /// order: a page of the set in O(log n + page).
    pub(crate) fn after(&self, cursor: Option<&Item>, limit: usize) -> Vec<Item> {
        let (mut chunk, mut offset) = match cursor {
            None => (0, 0),
            Some(cursor) => {
                let chunk = self.chunks.partition_point(|chunk| chunk.last().is_some_and(|last| last <= cursor));
                let offset = self.chunks.get(chunk).map_or(0, |items| items.partition_point(|item| item <= cursor));
                (chunk, offset)
            }
        };
        let mut page = Vec::with_capacity(limit.min(self.len));
        while page.len() < limit {
            let Some(items) = self.chunks.get(chunk) else { break };
            let take = (items.len() - offset).min(limit - page.len());
            page.extend_from_slice(&items[offset..offset + take]);
            (chunk, offset) = (chunk + 1, 0);
        }
        page
    }

    /// Adds `item`; false if it was there.
    pub(crate) fn insert(&mut self, item: Item) -> bool {
        if self.chunks.is_empty() {
            self.chunks.push(Arc::new(vec![item]));
            self.len = 1;
            return true;
        }
        // The first chunk whose last item is not below `item`, or the last.
        let at = self.chunk_for(&item).min(self.chunks.len() - 1);
        let chunk = Arc::make_mut(&mut self.chunks[at]);
        let Err(position) = chunk.binary_search(&item) else { return false };
        if chunk.len() == chunk.capacity() {
            // By an eighth, not by doubling: a chunk copied for a session
            // or just split would otherwise hold twice what it uses, and at
            // tens of millions of items that is most of the set again.
            chunk.reserve_exact(chunk.len() / 8 + 1);
        }
        chunk.insert(position, item);
        self.len += 1;
        if chunk.len() > CHUNK_MAX {
            let upper = chunk.split_off(chunk.len() / 2);
            // The lower half keeps the capacity the insert doubled: at
            // millions of items, as much memory again left unused.
            chunk.shrink_to_fit();
            self.chunks.insert(at + 1, Arc::new(upper));
        }
        true
    }

    /// Takes `item` out; false if it was not there.
    pub(crate) fn remove(&mut self, item: &Item) -> bool {
        let at = self.chunk_for(item);
        let Some(chunk) = self.chunks.get_mut(at) else { return false };
        let Ok(position) = chunk.binary_search(item) else { return false };
        let chunk = Arc::make_mut(chunk);
        chunk.remove(position);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(at);
        }
        true
    }

    /// What sessions read: the set as it is now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut ends = Vec::with_capacity(self.chunks.len());
        let mut end = 0;
        for chunk in &self.chunks {
            end += chunk.len();
            ends.push(end);
        }
        Snapshot(Arc::new(Frozen { chunks: self.chunks.clone(), ends, read: AtomicU64::new(0) }))
    }

    fn chunk_for(&self, item: &Item) -> usize {
        self.chunks.partition_point(|chunk| chunk.last().is_some_and(|last| last < item))
    }
}

/// The items at one moment, shared by the sessions that read them.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot(Arc<Frozen>);

impl Snapshot {
    /// Items negentropy has read from this snapshot so far: the work a
    /// reconciliation cost.
    pub(crate) fn read(&self) -> u64 {
        self.0.read.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Frozen {
    chunks: Vec<Arc<Vec<Item>>>,
    /// Items up to and including each chunk.
    ends: Vec<usize>,
    read: AtomicU64,
}

impl Frozen {
    fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The chunk holding position `i` and the position within it.
    fn locate(&self, i: usize) -> (usize, usize) {
        let chunk = self.ends.partition_point(|&end| end <= i);
        let start = if chunk == 0 { 0 } else { self.ends[chunk - 1] };
        (chunk, i - start)
    }
}

impl NegentropyStorageBase for Snapshot {
    fn size(&self) -> Result<usize, Error> {
        Ok(self.0.len())
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, Error> {
        if i >= self.0.len() {
            return Ok(None);
        }
        let (chunk, offset) = self.0.locate(i);
        self.0.read.fetch_add(1, Ordering::Relaxed);
        Ok(Some(self.0.chunks[chunk][offset]))
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        if begin > end || end > self.0.len() {
            return Err(Error::BadRange);
        }
        if begin == end {
            return Ok(());
        }
        let (mut chunk, mut offset) = self.0.locate(begin);
        let mut read = 0;
        for i in begin..end {
            if offset == self.0.chunks[chunk].len() {
                (chunk, offset) = (chunk + 1, 0);
            }
            read += 1;
            if !cb(self.0.chunks[chunk][offset], i)? {
                break;
            }
            offset += 1;
        }
        self.0.read.fetch_add(read, Ordering::Relaxed);
        Ok(())
    }

    /// The first position in `first..last` whose item is not below `value`.
    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        // Sorted throughout, so the set-wide bound, clamped, is the bound
        // within the range.
        let frozen = &self.0;
        let chunk = frozen.chunks.partition_point(|chunk| chunk.last().is_some_and(|last| *last < value.item));
        let global = match frozen.chunks.get(chunk) {
            None => frozen.len(),
            Some(items) => {
                let start = if chunk == 0 { 0 } else { frozen.ends[chunk - 1] };
                start + items.partition_point(|item| *item < value.item)
            }
        };
        global.clamp(first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use negentropy::NegentropyStorageVector;
    use proptest::prelude::*;

    fn item_of(time: u64, tag: u8) -> Item {
        item(time, &RecordId([tag; 32]))
    }

    /// Every read of a snapshot answers as negentropy's own sorted vector
    /// of the same items does.
    fn same_as_vector(items: &Items, model: &[Item]) {
        let mut vector = NegentropyStorageVector::new();
        for item in model {
            vector.insert(item.timestamp, item.id).unwrap();
        }
        vector.seal().unwrap();
        let snapshot = items.snapshot();
        let n = vector.size().unwrap();
        assert_eq!(snapshot.size().unwrap(), n);
        for i in 0..=n {
            assert_eq!(snapshot.get_item(i).unwrap(), vector.get_item(i).unwrap());
        }
        let mut seen = Vec::new();
        snapshot
            .iterate(0, n, &mut |item, _| {
                seen.push(item);
                Ok(true)
            })
            .unwrap();
        assert_eq!(seen, model);
        for probe in model.iter().map(|i| i.timestamp).chain([0, u64::MAX]) {
            for (first, last) in [(0, n), (n / 3, n), (0, n / 2)] {
                let bound = Bound::with_timestamp(probe);
                assert_eq!(
                    snapshot.find_lower_bound(first, last, &bound),
                    vector.find_lower_bound(first, last, &bound),
                    "bound {probe} in {first}..{last}"
                );
            }
        }
        if n > 1 {
            assert_eq!(*snapshot.fingerprint(1, n).unwrap(), *vector.fingerprint(1, n).unwrap());
        }
    }

    /// Random inserts while sessions hold snapshots (so chunks are copied
    /// and split all along) leave the chunks' capacity close to what they
    /// hold.
    #[test]
    fn inserted_items_take_little_more_room_than_they_need() {
        let mut items = Items::default();
        let mut held = std::collections::VecDeque::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for n in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut id = [0; 32];
            id[..8].copy_from_slice(&x.to_le_bytes());
            items.insert(item(x % 1_000_000_000, &RecordId(id)));
            if n % 10_000 == 0 {
                held.push_back(items.snapshot());
                if held.len() > 2 {
                    held.pop_front();
                }
            }
        }
        let capacity: usize = items.chunks.iter().map(|chunk| chunk.capacity()).sum();
        assert!(capacity * 100 <= items.len() * 115, "{capacity} slots for {} items", items.len());
    }

    proptest! {
        #[test]
        fn kept_in_step_it_reads_as_the_sorted_set(
            start in proptest::collection::vec((0u64..300, 0u8..4), 0..200),
            changes in proptest::collection::vec((any::<bool>(), 0u64..300, 0u8..4), 0..3_000),
        ) {
            let mut items = Items::new(start.iter().map(|&(t, tag)| item_of(t, tag)).collect());
            let mut model: std::collections::BTreeSet<Item> = start.iter().map(|&(t, tag)| item_of(t, tag)).collect();
            let held = items.snapshot();
            let held_model: Vec<Item> = model.iter().copied().collect();
            for (add, time, tag) in changes {
                let item = item_of(time, tag);
                if add {
                    prop_assert_eq!(items.insert(item), model.insert(item));
                } else {
                    prop_assert_eq!(items.remove(&item), model.remove(&item));
                }
            }
            prop_assert_eq!(items.len(), model.len());
            let ordered: Vec<Item> = model.iter().copied().collect();
            for (time, tag) in [(0, 0), (150, 2), (299, 3), (300, 0)] {
                let probe = item_of(time, tag);
                prop_assert_eq!(items.contains(&probe), model.contains(&probe));
                let expected: Vec<Item> = model.range(probe..).filter(|i| **i != probe).take(7).copied().collect();
                prop_assert_eq!(items.after(Some(&probe), 7), expected);
            }
            prop_assert_eq!(items.after(None, usize::MAX), ordered);
            same_as_vector(&items, &model.iter().copied().collect::<Vec<_>>());
            // A session's snapshot does not move with the set.
            let mut seen = Vec::new();
            held.iterate(0, held.size().unwrap(), &mut |item, _| {
            seen.push(item);
            Ok(true)
        }).unwrap();
            prop_assert_eq!(seen, held_model);
        }
    }
}
