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

    /// Cancels this token on Ctrl-C (SIGINT), from a background thread. The second
    /// Ctrl-C is left to the default handler... which tokio replaces, so the thread
    /// exits the process on a second one: a person pressing it twice means it.
    pub fn cancel_on_ctrl_c(&self) -> std::io::Result<()> {
        let token = self.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("meshconform-ctrl-c".into())
            .spawn(move || {
                rt.block_on(async {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!("meshconform: interrupted; cleaning up what this run created (Ctrl-C again to abort without cleanup)");
                        token.cancel();
                    }
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                });
            })?;
        Ok(())
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
