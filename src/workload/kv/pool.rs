//! A seeded free list of KV pages with a fragmentation knob.
//!
//! Serving engines hand out pages from a free queue: vLLM's block pool pops
//! free blocks from the head of its free queue and appends freed ones to the
//! tail. After a while the queue is no longer in id order, so a request's
//! pages scatter over the pool. [`BlockPool`] models that with one number,
//! the fragmentation F: the free list starts as the ids 0..blocks in order
//! and is then shuffled with a Fisher–Yates pass in which each swap step is
//! taken with probability F (F = 0: untouched; F = 1: a full seeded
//! shuffle). Requests are planned one at a time and their pages are freed
//! as soon as they are planned, so the list simply rotates.
//!
//! This module owns the free list only; what bytes a page holds is
//! `layout`'s business.

use super::KvError;

/// A seeded free list of block ids with a fragmentation knob.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPool {
    /// Free-list order, as built by [`BlockPool::new`].
    order: Vec<u32>,
    /// Index in `order` of the head of the free list.
    head: usize,
    fragmentation: f64,
    seed: u64,
}

impl BlockPool {
    /// `fragmentation` in 0..=1: 0 = consecutive ids in order, 1 = a full
    /// seeded shuffle (Fisher–Yates where each swap step is taken with
    /// probability F). Rejects F outside 0..=1 or NaN, and `blocks` 0.
    pub fn new(blocks: u32, fragmentation: f64, seed: u64) -> Result<BlockPool, KvError> {
        if !(0.0..=1.0).contains(&fragmentation) {
            return Err(KvError::Fragmentation(fragmentation));
        }
        if blocks == 0 {
            return Err(KvError::ZeroBlocks);
        }
        let mut order: Vec<u32> = (0..blocks).collect();
        if fragmentation > 0.0 {
            let mut rng = fastrand::Rng::with_seed(seed);
            for i in (1..order.len()).rev() {
                // f64() is in [0, 1): with F = 1 every step swaps.
                if rng.f64() < fragmentation {
                    let j = rng.usize(0..=i);
                    order.swap(i, j);
                }
            }
        }
        Ok(BlockPool {
            order,
            head: 0,
            fragmentation,
            seed,
        })
    }

    /// Pages in the pool.
    pub fn blocks(&self) -> u32 {
        self.order.len() as u32
    }

    /// The fragmentation the pool was built with.
    pub fn fragmentation(&self) -> f64 {
        self.fragmentation
    }

    /// The seed the pool was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The free list as it stands, head first.
    pub fn free_list(&self) -> Vec<u32> {
        let (tail, head) = self.order.split_at(self.head);
        head.iter().chain(tail).copied().collect()
    }

    /// The next request's `n` blocks in free-list order; one request at a
    /// time, so they go back to the tail of the list at once (the list
    /// rotates). Errors when n > blocks.
    pub fn allocate(&mut self, n: u32) -> Result<Vec<u32>, KvError> {
        let len = self.order.len();
        if n as usize > len {
            return Err(KvError::PoolExhausted {
                needed: u64::from(n),
                blocks: self.blocks(),
            });
        }
        let taken = (0..n as usize)
            .map(|i| self.order[(self.head + i) % len])
            .collect();
        self.head = (self.head + n as usize) % len;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_fragmentation_is_identity() {
        let mut pool = BlockPool::new(10, 0.0, 42).unwrap();
        assert_eq!(pool.free_list(), (0..10).collect::<Vec<_>>());
        assert_eq!(pool.allocate(4).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(pool.allocate(4).unwrap(), vec![4, 5, 6, 7]);
    }

    #[test]
    fn full_fragmentation_is_a_seeded_permutation() {
        let pool = BlockPool::new(64, 1.0, 7).unwrap();
        let mut order = pool.free_list();
        assert_ne!(order, (0..64).collect::<Vec<_>>());
        order.sort_unstable();
        assert_eq!(order, (0..64).collect::<Vec<_>>());
        // Same seed, same order; another seed, another order.
        assert_eq!(
            BlockPool::new(64, 1.0, 7).unwrap().free_list(),
            pool.free_list()
        );
        assert_ne!(
            BlockPool::new(64, 1.0, 8).unwrap().free_list(),
            pool.free_list()
        );
    }

    #[test]
    fn partial_fragmentation_is_a_permutation_between_the_extremes() {
        let identity: Vec<u32> = (0..1000).collect();
        let displaced = |f: f64| {
            let order = BlockPool::new(1000, f, 3).unwrap().free_list();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, identity);
            order.iter().zip(&identity).filter(|(a, b)| a != b).count()
        };
        let (low, high) = (displaced(0.1), displaced(1.0));
        assert!(low > 0 && low < high, "F=0.1 moved {low}, F=1 moved {high}");
    }

    #[test]
    fn allocate_rotates() {
        let mut pool = BlockPool::new(5, 0.0, 0).unwrap();
        assert_eq!(pool.allocate(3).unwrap(), vec![0, 1, 2]);
        assert_eq!(pool.free_list(), vec![3, 4, 0, 1, 2]);
        assert_eq!(pool.allocate(3).unwrap(), vec![3, 4, 0]);
        assert_eq!(pool.allocate(5).unwrap(), vec![1, 2, 3, 4, 0]);
        assert_eq!(pool.allocate(0).unwrap(), Vec::<u32>::new());
        let mut shuffled = BlockPool::new(8, 1.0, 11).unwrap();
        let list = shuffled.free_list();
        let a = shuffled.allocate(6).unwrap();
        let b = shuffled.allocate(6).unwrap();
        assert_eq!(a, list[..6]);
        assert_eq!(b, [&list[6..], &list[..4]].concat());
    }

    #[test]
    fn too_many_blocks_is_an_error() {
        let mut pool = BlockPool::new(4, 0.5, 1).unwrap();
        let err = pool.allocate(5).unwrap_err();
        assert_eq!(
            err,
            KvError::PoolExhausted {
                needed: 5,
                blocks: 4
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("needs 5 blocks") && text.contains("--pool-blocks is 4"),
            "{text}"
        );
    }

    #[test]
    fn rejects_bad_fragmentation() {
        for f in [1.5, -0.1, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(BlockPool::new(10, f, 0), Err(KvError::Fragmentation(_))),
                "{f}"
            );
        }
        assert_eq!(BlockPool::new(0, 0.0, 0), Err(KvError::ZeroBlocks));
        assert!(KvError::Fragmentation(1.5).to_string().contains("1.5"));
    }
}
