//! Candidate C: the same engine as request/completion state machines (`Put`, `Get`, `Recover`).
//! A machine's `step(completion)` returns the next device request or the result; the caller
//! performs the request and passes its outcome to the next `step`. `drive_blocking` and
//! `drive_async` are the only places that touch a device.
use crate::common::*;

pub enum Request<'a> {
    Read { offset: u32, buf: &'a mut [u8] },
    Write { offset: u32, data: &'a [u8] },
    Erase { from: u32, to: u32 },
}

pub enum Step<'a, T> {
    Io(Request<'a>),
    Done(Result<T, Error>),
}

pub trait Machine {
    type Out;
    fn step(&mut self, done: Result<(), Error>) -> Step<'_, Self::Out>;
}

pub fn drive_blocking<M: Machine, F: embedded_storage::nor_flash::NorFlash>(
    m: &mut M,
    dev: &mut F,
) -> Result<M::Out, Error> {
    let mut done = Ok(());
    loop {
        done = match m.step(done) {
            Step::Done(r) => return r,
            Step::Io(Request::Read { offset, buf }) => dev.read(offset, buf).map_err(dev_err),
            Step::Io(Request::Write { offset, data }) => dev.write(offset, data).map_err(dev_err),
            Step::Io(Request::Erase { from, to }) => dev.erase(from, to).map_err(dev_err),
        };
    }
}

pub async fn drive_async<M: Machine, F: embedded_storage_async::nor_flash::NorFlash>(
    m: &mut M,
    dev: &mut F,
) -> Result<M::Out, Error> {
    let mut done = Ok(());
    loop {
        done = match m.step(done) {
            Step::Done(r) => return r,
            Step::Io(Request::Read { offset, buf }) => dev.read(offset, buf).await.map_err(dev_err),
            Step::Io(Request::Write { offset, data }) => dev.write(offset, data).await.map_err(dev_err),
            Step::Io(Request::Erase { from, to }) => dev.erase(from, to).await.map_err(dev_err),
        };
    }
}

/// Engine state that outlives one operation.
pub struct Core {
    pub head: u32,
    pub chain: u32,
    pub seq: u32,
}

impl Core {
    pub fn new() -> Self {
        Core { head: 0, chain: FNV_SEED, seq: 0 }
    }
}

impl Default for Core {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy)]
enum PutState {
    Start,
    /// Build piece `i` (data pieces, then the commit piece at i == n).
    Build(u16),
    Erased(u16),
    Seal(u16),
    Written(u16),
    HomeRead,
    HomeModify,
    HomeWrite(u16),
    Finish,
    Over,
}

pub struct Put<'c, 'd> {
    core: &'c mut Core,
    key: u8,
    data: &'d [u8],
    scratch: &'d mut [u8; BLOCK],
    tx: Tx,
    piece: [u8; PIECE],
    state: PutState,
}

impl<'c, 'd> Put<'c, 'd> {
    pub fn new(core: &'c mut Core, key: u8, data: &'d [u8], scratch: &'d mut [u8; BLOCK]) -> Self {
        let tx = Tx::begin(core.seq);
        Put { core, key, data, scratch, tx, piece: [0; PIECE], state: PutState::Start }
    }
}

impl Machine for Put<'_, '_> {
    type Out = ();
    fn step(&mut self, done: Result<(), Error>) -> Step<'_, ()> {
        use PutState as S;
        if let Err(e) = done {
            self.state = S::Over;
            return Step::Done(Err(e));
        }
        let n = pieces_for(self.data.len());
        let addr = home_addr(self.key);
        loop {
            match self.state {
                S::Start => {
                    if let Err(e) = self.tx.stage(self.key, self.data) {
                        self.state = S::Over;
                        return Step::Done(Err(e));
                    }
                    self.state = S::Build(0);
                }
                S::Build(i) => {
                    if i < n {
                        let s = i as usize * PAYLOAD;
                        let chunk = &self.data[s..self.data.len().min(s + PAYLOAD)];
                        encode_piece(&mut self.piece, KIND_DATA, &self.tx, i, chunk);
                    } else {
                        encode_piece(&mut self.piece, KIND_COMMIT, &self.tx, n, &[]);
                    }
                    if self.core.head + PIECE as u32 > WAL_SIZE {
                        self.state = S::Erased(i);
                        return Step::Io(Request::Erase { from: WAL_BASE, to: WAL_BASE + WAL_SIZE });
                    }
                    self.state = S::Seal(i);
                }
                S::Erased(i) => {
                    self.core.head = 0;
                    self.core.chain = FNV_SEED;
                    self.state = S::Seal(i);
                }
                S::Seal(i) => {
                    self.core.chain = seal_piece(&mut self.piece, self.core.chain);
                    self.state = S::Written(i);
                    return Step::Io(Request::Write { offset: WAL_BASE + self.core.head, data: &self.piece[..] });
                }
                S::Written(i) => {
                    self.core.head += PIECE as u32;
                    self.state = if i < n { S::Build(i + 1) } else { S::HomeRead };
                }
                S::HomeRead => {
                    self.state = S::HomeModify;
                    return Step::Io(Request::Read { offset: addr, buf: &mut self.scratch[..] });
                }
                S::HomeModify => {
                    if !encode_home(self.scratch, self.key, self.data) {
                        self.state = S::Finish;
                    } else {
                        self.state = S::HomeWrite(0);
                        return Step::Io(Request::Erase { from: addr, to: addr + BLOCK as u32 });
                    }
                }
                S::HomeWrite(c) => {
                    let c = c as usize;
                    if c == BLOCK / PIECE {
                        self.state = S::Finish;
                    } else {
                        self.state = S::HomeWrite(c as u16 + 1);
                        return Step::Io(Request::Write {
                            offset: addr + (c * PIECE) as u32,
                            data: &self.scratch[c * PIECE..(c + 1) * PIECE],
                        });
                    }
                }
                S::Finish => {
                    self.core.seq = self.core.seq.wrapping_add(1);
                    self.state = S::Over;
                    return Step::Done(Ok(()));
                }
                S::Over => return Step::Done(Err(Error::Corrupt)),
            }
        }
    }
}

pub struct Get<'d> {
    key: u8,
    out: &'d mut [u8],
    scratch: &'d mut [u8; BLOCK],
    read: bool,
}

impl<'d> Get<'d> {
    pub fn new(key: u8, out: &'d mut [u8], scratch: &'d mut [u8; BLOCK]) -> Self {
        Get { key, out, scratch, read: false }
    }
}

impl Machine for Get<'_> {
    type Out = usize;
    fn step(&mut self, done: Result<(), Error>) -> Step<'_, usize> {
        if let Err(e) = done {
            return Step::Done(Err(e));
        }
        if !self.read {
            self.read = true;
            return Step::Io(Request::Read { offset: home_addr(self.key), buf: &mut self.scratch[..] });
        }
        Step::Done(decode_home(self.key, self.scratch, self.out))
    }
}

pub struct Recover<'c> {
    core: &'c mut Core,
    piece: [u8; PIECE],
    off: u32,
    chain: u32,
    n: u32,
    last: Option<u32>,
    reading: bool,
}

impl<'c> Recover<'c> {
    pub fn new(core: &'c mut Core) -> Self {
        Recover { core, piece: [0; PIECE], off: 0, chain: FNV_SEED, n: 0, last: None, reading: false }
    }
}

impl Machine for Recover<'_> {
    type Out = u32;
    fn step(&mut self, done: Result<(), Error>) -> Step<'_, u32> {
        if let Err(e) = done {
            return Step::Done(Err(e));
        }
        if self.reading {
            self.reading = false;
            match check_piece(&self.piece, self.chain) {
                Some((c, kind, seq)) => {
                    self.chain = c;
                    if kind == KIND_COMMIT {
                        self.last = Some(seq);
                    }
                    self.off += PIECE as u32;
                    self.n += 1;
                }
                None => return self.finish(),
            }
        }
        if self.off + PIECE as u32 <= WAL_SIZE {
            self.reading = true;
            return Step::Io(Request::Read { offset: WAL_BASE + self.off, buf: &mut self.piece[..] });
        }
        self.finish()
    }
}

impl Recover<'_> {
    fn finish(&mut self) -> Step<'_, u32> {
        self.core.head = self.off;
        self.core.chain = self.chain;
        self.core.seq = self.last.map_or(0, |s| s.wrapping_add(1));
        Step::Done(Ok(self.n))
    }
}

/// Blocking volume over candidate C.
pub struct Volume<F> {
    pub dev: F,
    pub core: Core,
}

impl<F> Volume<F> {
    pub fn new(dev: F) -> Self {
        Volume { dev, core: Core::new() }
    }
}

impl<F: embedded_storage::nor_flash::NorFlash> Volume<F> {
    pub fn put(&mut self, key: u8, data: &[u8], scratch: &mut [u8; BLOCK]) -> Result<(), Error> {
        drive_blocking(&mut Put::new(&mut self.core, key, data, scratch), &mut self.dev)
    }
    pub fn get(&mut self, key: u8, out: &mut [u8], scratch: &mut [u8; BLOCK]) -> Result<usize, Error> {
        drive_blocking(&mut Get::new(key, out, scratch), &mut self.dev)
    }
    pub fn recover(&mut self) -> Result<u32, Error> {
        drive_blocking(&mut Recover::new(&mut self.core), &mut self.dev)
    }
}

/// Async volume over candidate C (a separate type: the drivers differ, the machines are shared).
pub struct AsyncVolume<F> {
    pub dev: F,
    pub core: Core,
}

impl<F> AsyncVolume<F> {
    pub fn new(dev: F) -> Self {
        AsyncVolume { dev, core: Core::new() }
    }
}

impl<F: embedded_storage_async::nor_flash::NorFlash> AsyncVolume<F> {
    pub async fn put(&mut self, key: u8, data: &[u8], scratch: &mut [u8; BLOCK]) -> Result<(), Error> {
        drive_async(&mut Put::new(&mut self.core, key, data, scratch), &mut self.dev).await
    }
    pub async fn get(&mut self, key: u8, out: &mut [u8], scratch: &mut [u8; BLOCK]) -> Result<usize, Error> {
        drive_async(&mut Get::new(key, out, scratch), &mut self.dev).await
    }
    pub async fn recover(&mut self) -> Result<u32, Error> {
        drive_async(&mut Recover::new(&mut self.core), &mut self.dev).await
    }
}
