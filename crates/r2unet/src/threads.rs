//! One scoped thread per item, for the places that run independent
//! computations side by side: data-parallel shards, images segmented at once
//! (Burn's CPU backend leaves part of the second core idle, BENCHMARKS.md).

use std::any::Any;
use std::thread;

/// `f` of each item, each in its own scoped thread; results in item order,
/// a panicking item as its panic payload (see [`panic_message`]).
pub fn each_in_own_thread<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<thread::Result<R>> {
    let f = &f;
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| scope.spawn(move || f(item)))
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    })
}

/// As [`each_in_own_thread`], a panic in any item continuing in the caller.
pub fn map_in_threads<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    each_in_own_thread(items, f)
        .into_iter()
        .map(|r| r.unwrap_or_else(|payload| std::panic::resume_unwind(payload)))
        .collect()
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_and_panics_are_reported() {
        assert_eq!(map_in_threads(vec![1, 2, 3], |x| x * 10), vec![10, 20, 30]);
        let results = each_in_own_thread(vec![1, 0], |x| {
            assert!(x != 0, "item {x} failed");
            x
        });
        assert_eq!(results[0].as_ref().ok(), Some(&1));
        let payload = results.into_iter().nth(1).unwrap().unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "item 0 failed");
    }
}
