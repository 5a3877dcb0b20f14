//! [`gated`]: a future polled only after it was woken itself, for the branches of a
//! connection's `select!` loop that wait on the listener (its watch channels, the drain and
//! idle timers).
//!
//! The loop's task wakes for every read and write of its connection, and `select!` then polls
//! every branch. The four watch channels alone cost 1.5k instructions per proxied request
//! (each poll builds and registers a `Notified`), more than routing the request. Behind a
//! gate, a branch nobody woke costs a waker registration and a flag.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::{waker_ref, ArcWake, AtomicWaker};

/// Whether the inner future was woken since it was last polled, and the task to wake then.
struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl ArcWake for Gate {
    fn wake_by_ref(gate: &Arc<Self>) {
        gate.woken.store(true, Ordering::Release);
        gate.task.wake();
    }
}

/// `fut`, polled on its first poll and then only after it woke its own waker.
pub struct Gated<F> {
    inner: Pin<Box<F>>,
    gate: Arc<Gate>,
}

pub fn gated<F: Future>(fut: F) -> Gated<F> {
    Gated { inner: Box::pin(fut), gate: Arc::new(Gate { woken: AtomicBool::new(true), task: AtomicWaker::new() }) }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        // Registered before the flag is read: a wake after the read wakes this task.
        this.gate.task.register(cx.waker());
        if !this.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = waker_ref(&this.gate);
        this.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_gated_timer_and_channel_still_fire() {
        let t0 = tokio::time::Instant::now();
        assert!(tokio::time::timeout(Duration::from_secs(10), gated(tokio::time::sleep(Duration::from_secs(5))))
            .await
            .is_ok());
        assert_eq!(t0.elapsed(), Duration::from_secs(5));

        let (tx, mut rx) = tokio::sync::watch::channel(0u32);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(7);
            tx
        });
        let changed = tokio::time::timeout(Duration::from_secs(10), gated(rx.changed())).await;
        assert!(matches!(changed, Ok(Ok(()))));
        assert_eq!(*rx.borrow(), 7);
        drop(sender.await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_branch_not_woken_is_not_polled_again() {
        struct Counting(Arc<std::sync::atomic::AtomicU32>);
        impl Future for Counting {
            type Output = ();
            fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
                self.0.fetch_add(1, Ordering::Relaxed);
                Poll::Pending
            }
        }
        let polls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut branch = gated(Counting(Arc::clone(&polls)));
        // Bounded: ten ticks of a select loop woken by something else.
        for _ in 0..10 {
            tokio::select! {
                () = &mut branch => unreachable!("never ready"),
                () = tokio::task::yield_now() => {}
            }
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);
    }
}
