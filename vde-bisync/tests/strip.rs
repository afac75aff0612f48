//! The two meanings of `#[bisync]` on the same source: `strip_async` makes a plain blocking item
//! (no `async`, no `.await`, async closure traits read as plain ones), `keep_async` leaves it.

mod blocking {
    use vde_bisync::strip_async as bisync;

    #[bisync]
    pub async fn double(x: u32) -> u32 {
        add(x, x).await
    }

    #[bisync]
    async fn add(a: u32, b: u32) -> u32 {
        a + b
    }

    #[bisync]
    pub async fn apply(f: impl AsyncFnOnce(u32) -> u32, x: u32) -> u32 {
        f(x).await
    }

    pub struct Counter(pub u32);

    #[bisync]
    impl Counter {
        pub async fn bump(&mut self) -> u32 {
            self.0 += 1;
            let read = async |c: &Counter| c.0;
            read(self).await
        }
    }
}

mod asynchronous {
    use vde_bisync::keep_async as bisync;

    #[bisync]
    pub async fn double(x: u32) -> u32 {
        add(x, x).await
    }

    #[bisync]
    async fn add(a: u32, b: u32) -> u32 {
        a + b
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
    let fut = asynchronous::double(21);
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => assert_eq!(v, 42),
        std::task::Poll::Pending => panic!("nothing here waits"),
    }
}

use std::future::Future;
