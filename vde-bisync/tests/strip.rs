//! The two meanings of `#[bisync]` on one source (`strip/items.rs`, compiled in both modules):
//! `strip_async` makes plain blocking items (no `async`, no `.await`, async closure traits read
//! as plain ones), `keep_async` leaves them async.

use std::future::Future;
use std::task::{Context, Poll, Waker};

mod blocking {
    use vde_bisync::strip_async as bisync;
    include!("strip/items.rs");
}

mod asynchronous {
    use vde_bisync::keep_async as bisync;
    include!("strip/items.rs");
}

/// The value of a future that never waits, after one poll.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("nothing here waits"),
    }
}

#[test]
fn strip_async_makes_plain_functions() {
    // Called without an executor: these are plain functions returning plain values.
    let d: u32 = blocking::double(21);
    assert_eq!(d, 42);
    let f: u32 = blocking::apply(|x| x * 3, 5);
    assert_eq!(f, 15);
    let mut c = blocking::Counter(1);
    assert_eq!(c.bump(), 2);
}

#[test]
fn keep_async_leaves_futures() {
    assert_eq!(ready(asynchronous::double(21)), 42);
    assert_eq!(ready(asynchronous::apply(async |x| x * 3, 5)), 15);
    let mut c = asynchronous::Counter(1);
    assert_eq!(ready(c.bump()), 2);
}
