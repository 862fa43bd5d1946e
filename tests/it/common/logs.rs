//! Log lines a test reads back: a writer that keeps what is written in
//! memory, for a subscriber the test installs on its own thread only
//! (`tracing::subscriber::set_default`), plain text or refundd's JSON lines.

use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything written to it, kept; its clones write to the same place.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// All that was written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The lines written so far, each read as JSON.
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// A subscriber for the whole process that records nothing but keeps every
/// callsite asking. tracing caches, per callsite, whether any subscriber
/// wants it, and recomputes that cache whenever a subscriber comes or goes:
/// with tests on many threads installing and dropping their own, a
/// recomputation racing another can leave a callsite marked "never" while a
/// test's subscriber wants it, and that test sees no lines. With this one
/// always answering "sometimes", no callsite can be marked "never", and each
/// event asks the subscriber of its own thread (this one, on a thread with
/// none, declines it).
struct KeepsCallsitesAsking;

impl tracing::Subscriber for KeepsCallsitesAsking {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Installs `subscriber` for this thread only, as a test that reads logs
/// does, with every callsite kept asking (`KeepsCallsitesAsking`).
pub fn on_this_thread(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> tracing::subscriber::DefaultGuard {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(KeepsCallsitesAsking);
    });
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    guard
}
