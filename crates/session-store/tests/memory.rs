//! The conformance suite on `MemoryStore`, on a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use conformance::{Harness, conformance_suite};
use session_store::{ManualClock, MemoryStore, SessionKey};

struct Memory {
    store: MemoryStore,
    clock: ManualClock,
}

impl Harness for Memory {
    type Store = MemoryStore;

    fn a(&self) -> &MemoryStore {
        &self.store
    }

    fn b(&self) -> &MemoryStore {
        &self.store
    }

    async fn pass(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn real_time(&self) -> bool {
        false
    }

    async fn write_raw(&self, _key: &SessionKey, _bytes: &[u8]) -> bool {
        false
    }
}

async fn memory() -> Option<Memory> {
    let clock = ManualClock::new(1_000_000);
    let store = MemoryStore::new().with_clock(Arc::new(clock.clone()));
    Some(Memory { store, clock })
}

conformance_suite!(memory());
