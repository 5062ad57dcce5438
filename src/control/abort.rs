//! A run's abort signal: raised by whoever learns that the run must end now
//! (a watcher that saw the peer's control connection close, a coordinator
//! that lost a node), checked by every engine wait loop where it would
//! otherwise keep polling a dead peer until its stall timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A shared abort flag with the reason it was raised. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Abort(Arc<AbortState>);

#[derive(Debug, Default)]
struct AbortState {
    raised: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Abort {
    /// A flag nobody has raised.
    pub fn new() -> Abort {
        Abort::default()
    }

    /// Raises the flag; the first reason given is the one kept.
    pub fn raise(&self, reason: impl Into<String>) {
        let mut kept = self.0.reason.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_none() {
            *kept = Some(reason.into());
        }
        self.0.raised.store(true, Ordering::Release);
    }

    /// Whether the flag is up (one relaxed load: cheap enough for any loop).
    #[inline]
    pub fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::Relaxed)
    }

    /// Why the flag was raised, once it is.
    pub fn reason(&self) -> Option<String> {
        if !self.is_raised() {
            return None;
        }
        self.0
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_the_first_reason_is_kept() {
        let abort = Abort::new();
        let seen = abort.clone();
        assert!(!seen.is_raised());
        assert_eq!(seen.reason(), None);
        abort.raise("peer closed");
        abort.raise("later");
        assert!(seen.is_raised());
        assert_eq!(seen.reason().as_deref(), Some("peer closed"));
    }
}
