//! Test hooks of the writer thread: hold it before it takes a batch, make the next commit
//! fail, count its transactions and checkpoints. Outside tests every hook is a no-op
//! on a zero-sized type that the compiler removes.

use super::AuditError;

#[cfg(test)]
pub(crate) use enabled::Hooks;

#[cfg(not(test))]
#[derive(Debug)]
pub(crate) struct Hooks;

#[cfg(not(test))]
impl Hooks {
    pub(crate) fn inert() -> Hooks {
        Hooks
    }

    pub(crate) async fn until_running(&self) {}

    pub(crate) fn commit_fault(&self) -> Result<(), AuditError> {
        Ok(())
    }

    pub(crate) fn committed(&self, _checkpointed: bool) {}
}

#[cfg(test)]
mod enabled {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use tokio::sync::watch;

    use super::AuditError;

    #[derive(Debug)]
    pub(crate) struct Hooks {
        running: watch::Sender<bool>,
        fail_next_commit: AtomicBool,
        transactions: AtomicU64,
        checkpoints: watch::Sender<u64>,
    }

    impl Hooks {
        /// Hooks that change nothing.
        pub(crate) fn inert() -> Hooks {
            Hooks::new(true)
        }

        /// Hooks of a writer that starts running, or held before its first receive.
        pub(crate) fn new(running: bool) -> Hooks {
            Hooks {
                running: watch::Sender::new(running),
                fail_next_commit: AtomicBool::new(false),
                transactions: AtomicU64::new(0),
                checkpoints: watch::Sender::new(0),
            }
        }

        /// Holds the writer at its next gate: before it receives, or right after it
        /// received the first event of a batch (before it takes the rest).
        pub(crate) fn hold(&self) {
            self.running.send_replace(false);
        }

        /// Lets a held writer go on.
        pub(crate) fn resume(&self) {
            self.running.send_replace(true);
        }

        /// Makes the writer's next commit fail after its statements ran.
        pub(crate) fn fail_next_commit(&self) {
            self.fail_next_commit.store(true, Ordering::SeqCst);
        }

        /// Transactions committed so far.
        pub(crate) fn transactions(&self) -> u64 {
            self.transactions.load(Ordering::SeqCst)
        }

        /// Waits until at least `n` transactions that wrote a checkpoint committed.
        pub(crate) async fn checkpoints_committed(&self, n: u64) {
            let mut committed = self.checkpoints.subscribe();
            let _ = committed.wait_for(|count| *count >= n).await;
        }

        pub(crate) async fn until_running(&self) {
            let mut running = self.running.subscribe();
            let _ = running.wait_for(|running| *running).await;
        }

        pub(crate) fn commit_fault(&self) -> Result<(), AuditError> {
            if self.fail_next_commit.swap(false, Ordering::SeqCst) {
                return Err(AuditError::Unavailable("injected commit failure".into()));
            }
            Ok(())
        }

        pub(crate) fn committed(&self, checkpointed: bool) {
            self.transactions.fetch_add(1, Ordering::SeqCst);
            if checkpointed {
                self.checkpoints.send_modify(|count| *count += 1);
            }
        }
    }
}
