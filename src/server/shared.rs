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
//!   change announced meanwhile is never hidden. On PostgreSQL a change
//!   made on another replica counts once its notice arrives here (the
//!   pages hear of it then too); one made behind the panel's back (a CLI
//!   command on the database) shows within [`MAX_AGE`].
//! - Callers that arrive while it is being computed wait for that one
//!   computation instead of starting their own, and share its error too.
//! - An error is not kept: the next caller tries again. Nor is an answer
//!   older than [`MAX_AGE`] once another is made, so the map holds only
//!   what was asked for in the last few seconds.

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

type Answer<V, E> = Arc<OnceCell<Result<V, E>>>;

struct Slot<V, E> {
    generation: u64,
    made: Instant,
    answer: Answer<V, E>,
}

/// Answers by key, each valid for one bus generation.
pub struct Shared<K, V, E> {
    slots: Mutex<HashMap<K, Slot<V, E>>>,
}

impl<K, V, E> Default for Shared<K, V, E> {
    fn default() -> Self {
        Self { slots: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash + Clone, V: Clone, E: Clone> Shared<K, V, E> {
    /// The answer for `key` at `generation`: the one already made (or
    /// being made) at that generation within [`MAX_AGE`] of `now`, else
    /// what `make` computes now.
    pub async fn get<Fut>(&self, key: K, generation: u64, now: Instant, make: impl FnOnce() -> Fut) -> Result<V, E>
    where
        Fut: Future<Output = Result<V, E>>,
    {
        let answer = {
            let mut slots = self.lock();
            match slots.get(&key) {
                // One made at a later generation is fresher still.
                Some(slot) if slot.generation >= generation && now.duration_since(slot.made) < MAX_AGE => {
                    slot.answer.clone()
                }
                _ => {
                    slots.retain(|_, slot| now.duration_since(slot.made) < MAX_AGE);
                    let answer = Answer::default();
                    slots.insert(key.clone(), Slot { generation, made: now, answer: Arc::clone(&answer) });
                    answer
                }
            }
        };
        let result = answer.get_or_init(make).await.clone();
        if result.is_err() {
            let mut slots = self.lock();
            if slots.get(&key).is_some_and(|slot| Arc::ptr_eq(&slot.answer, &answer)) {
                slots.remove(&key);
            }
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot<V, E>>> {
        // A poisoned lock only means a caller panicked while holding it;
        // the map is still whole (no code under the lock can leave it
        // half-changed).
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
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
        let shared = Shared::<u8, u32, String>::default();
        let made = AtomicUsize::new(0);
        let now = Instant::now();
        let calls = (0..100).map(|_| shared.get(1, 7, now, || counted(&made, 42)));
        let answers = futures_util::future::join_all(calls).await;
        assert!(answers.iter().all(|a| *a == Ok(42)), "{answers:?}");
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_new_generation_another_key_or_an_old_answer_is_computed_again() {
        let shared = Shared::<u8, u32, String>::default();
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
    async fn callers_waiting_on_a_failed_computation_share_its_error_and_keep_nothing() {
        let shared = Shared::<u8, u32, String>::default();
        let tries = AtomicUsize::new(0);
        let now = Instant::now();
        let failing = || async {
            tries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err::<u32, String>("database busy".to_owned())
        };
        let answers = futures_util::future::join_all((0..100).map(|_| shared.get(1, 7, now, failing))).await;
        assert!(answers.iter().all(|a| a.is_err()), "{answers:?}");
        assert_eq!(tries.load(Ordering::SeqCst), 1, "one try, not one after another");
        assert_eq!(shared.len(), 0, "a key that failed (a server that does not exist) keeps no slot");
    }

    #[tokio::test]
    async fn answers_older_than_max_age_are_dropped_when_another_is_kept() {
        let shared = Shared::<u8, u32, String>::default();
        let made = AtomicUsize::new(0);
        let now = Instant::now();
        for key in 0..50 {
            shared.get(key, 7, now, || counted(&made, 1)).await.unwrap();
        }
        assert_eq!(shared.len(), 50);
        shared.get(99, 7, now + MAX_AGE, || counted(&made, 1)).await.unwrap();
        assert_eq!(shared.len(), 1, "only the one just made is left");
    }

    #[tokio::test]
    async fn an_error_is_not_kept() {
        let shared = Shared::<u8, u32, String>::default();
        let now = Instant::now();
        let failed: Result<u32, String> = shared.get(1, 7, now, || async { Err("database busy".to_owned()) }).await;
        assert_eq!(failed, Err("database busy".to_owned()));
        let made = AtomicUsize::new(0);
        assert_eq!(shared.get(1, 7, now, || counted(&made, 9)).await, Ok(9));
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }
}
