//! A decode (or prefill) worker's KV page pool with real allocation and
//! release: pages are taken from the head of a free queue and freed pages go
//! to its tail, as vLLM's block pool does, so a pool that has served a while
//! hands out scattered pages on its own. The initial order comes from
//! [`BlockPool`]'s fragmentation knob.

use std::collections::VecDeque;

use crate::workload::kv::{BlockPool, KvError};

/// Free pages of one worker's pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PagePool {
    free: VecDeque<u32>,
    blocks: u32,
}

impl PagePool {
    /// `blocks` pages, free-list order shuffled by `fragmentation` (0..=1).
    pub fn new(blocks: u32, fragmentation: f64, seed: u64) -> Result<PagePool, KvError> {
        let order = BlockPool::new(blocks, fragmentation, seed)?.free_list();
        Ok(PagePool {
            free: order.into(),
            blocks,
        })
    }

    /// Pages in the pool.
    pub fn blocks(&self) -> u32 {
        self.blocks
    }

    /// Pages free now.
    pub fn free(&self) -> u32 {
        self.free.len() as u32
    }

    /// Pages in use now.
    pub fn used(&self) -> u32 {
        self.blocks - self.free()
    }

    /// Takes `n` pages from the head of the free queue, or `None` (nothing
    /// taken) when fewer are free.
    pub fn allocate(&mut self, n: u32) -> Option<Vec<u32>> {
        if n as usize > self.free.len() {
            return None;
        }
        Some(self.free.drain(..n as usize).collect())
    }

    /// Returns pages to the tail of the free queue.
    pub fn release(&mut self, pages: &[u32]) {
        debug_assert!(self.free.len() + pages.len() <= self.blocks as usize);
        self.free.extend(pages.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_from_the_head_and_frees_to_the_tail() {
        let mut pool = PagePool::new(8, 0.0, 1).unwrap();
        let a = pool.allocate(3).unwrap();
        let b = pool.allocate(3).unwrap();
        assert_eq!((a.clone(), b), (vec![0, 1, 2], vec![3, 4, 5]));
        assert_eq!(pool.free(), 2);
        assert!(pool.allocate(3).is_none(), "only 2 free");
        assert_eq!(pool.free(), 2, "a refused allocation takes nothing");
        pool.release(&a);
        assert_eq!(pool.used(), 3);
        // the freed pages queue behind 6, 7: the pool scatters by itself
        assert_eq!(pool.allocate(4).unwrap(), vec![6, 7, 0, 1]);
    }
}
