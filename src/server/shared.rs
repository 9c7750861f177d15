//! One computation shared by every open page that asks at once.
//!
//! A live event reaches every open tab together, and each refetches what
//! it shows a moment later. For a fleet-wide figure (the dashboard) that
//! is the same question, asked by each tab: [`Shared`] answers it once per
//! bus generation ([`crate::server::bus::EventBus::generation`]) and hands
//! the answer to every caller until the next event, or [`MAX_AGE`].
//!
//! - A value is kept with the generation read *before* it was computed: an
//!   event that arrives while it is computed makes it stale at once, so a
//!   change committed meanwhile is never hidden.
//! - Callers that arrive while it is being computed wait for that one
//!   computation instead of starting their own.
//! - An error is not kept: the next caller tries again.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The longest an answer is handed out, events or not: what depends on
/// the clock alone (a session's age, the last minutes' disconnects) moves
/// on without an event.
pub const MAX_AGE: Duration = Duration::from_secs(5);

struct Slot<V> {
    generation: u64,
    made: Instant,
    value: Arc<OnceCell<V>>,
}

/// Answers by key, each valid for one bus generation.
pub struct Shared<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

impl<K, V> Default for Shared<K, V> {
    fn default() -> Self {
        Self { slots: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Shared<K, V> {
    /// The answer for `key` at `generation`: the one already made (or
    /// being made) at that generation within [`MAX_AGE`] of `now`, else
    /// what `make` computes now.
    pub async fn get<E, Fut>(&self, key: K, generation: u64, now: Instant, make: impl FnOnce() -> Fut) -> Result<V, E>
    where
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            // A poisoned lock only means a caller panicked while holding
            // it; the map is still whole (no code between lock and insert
            // can leave it half-changed).
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(&key) {
                // One made at a later generation is fresher still.
                Some(slot) if slot.generation >= generation && now.duration_since(slot.made) < MAX_AGE => {
                    slot.value.clone()
                }
                _ => {
                    let value = Arc::new(OnceCell::new());
                    slots.insert(key, Slot { generation, made: now, value: value.clone() });
                    value
                }
            }
        };
        cell.get_or_try_init(make).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn counted(made: &AtomicUsize, value: u32) -> Result<u32, String> {
        made.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(value)
    }

    #[tokio::test]
    async fn a_hundred_callers_at_one_generation_share_one_computation() {
        let shared = Shared::<u8, u32>::default();
        let made = AtomicUsize::new(0);
        let now = Instant::now();
        let calls = (0..100).map(|_| shared.get(1, 7, now, || counted(&made, 42)));
        let answers = futures_util::future::join_all(calls).await;
        assert!(answers.iter().all(|a| *a == Ok(42)), "{answers:?}");
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_new_generation_another_key_or_an_old_answer_is_computed_again() {
        let shared = Shared::<u8, u32>::default();
        let made = AtomicUsize::new(0);
        let now = Instant::now();
        assert_eq!(shared.get(1, 7, now, || counted(&made, 1)).await, Ok(1));
        assert_eq!(shared.get(1, 7, now + Duration::from_secs(1), || counted(&made, 2)).await, Ok(1));
        assert_eq!(made.load(Ordering::SeqCst), 1, "same generation, young: shared");
        assert_eq!(shared.get(1, 8, now, || counted(&made, 3)).await, Ok(3), "an event came");
        assert_eq!(shared.get(1, 7, now, || counted(&made, 0)).await, Ok(3), "a later answer serves an earlier ask");
        assert_eq!(shared.get(2, 8, now, || counted(&made, 4)).await, Ok(4), "another key");
        assert_eq!(shared.get(1, 8, now + MAX_AGE, || counted(&made, 5)).await, Ok(5), "too old");
        assert_eq!(made.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_error_is_not_kept() {
        let shared = Shared::<u8, u32>::default();
        let now = Instant::now();
        let failed: Result<u32, String> = shared.get(1, 7, now, || async { Err("database busy".to_owned()) }).await;
        assert_eq!(failed, Err("database busy".to_owned()));
        let made = AtomicUsize::new(0);
        assert_eq!(shared.get(1, 7, now, || counted(&made, 9)).await, Ok(9));
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }
}
