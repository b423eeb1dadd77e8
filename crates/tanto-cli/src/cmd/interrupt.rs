//! Ctrl-C during generation: a process-wide flag that the generation sinks
//! of `run` and its chat turn into `Flow::Stop`, so an answer ends cleanly
//! instead of killing the process.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// The flag SIGINT sets. The handler is installed on the first call, so
/// Ctrl-C keeps its default meaning (end the process) until then.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        let g = f.clone();
        let _ = ctrlc::set_handler(move || g.store(true, std::sync::atomic::Ordering::SeqCst));
        f
    })
    .clone()
}
