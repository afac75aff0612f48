// The one source both modules of `strip.rs` compile, each with its own `bisync`.

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
