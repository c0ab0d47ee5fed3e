//! Cancellation: Ctrl-C sets a flag the executor checks between steps and retries,
//! so a cancelled run still cleans up what it created.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared "stop now" flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token over an existing flag (the CLI's Ctrl-C flag), so one handler serves
    /// the whole run.
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        Self(flag)
    }

    /// Asks everything holding the token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
        let flag = Arc::new(AtomicBool::new(false));
        let c = CancelToken::from_flag(Arc::clone(&flag));
        flag.store(true, Ordering::SeqCst);
        assert!(c.is_cancelled());
    }
}
