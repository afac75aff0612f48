//! The error type of the std adapter: every failure a file-backed volume can meet, each with a
//! one-line message a person can act on.
//!
//! Core errors ([`vde_nostd::Error`] over [`std::io::Error`]) convert with `From`: the ones a
//! caller is likely to match on (not an image, unsupported version, I/O) become their own
//! variants, the rest are kept in [`Error::Engine`] and rendered by [`engine_message`].

use std::io;
use std::path::PathBuf;

use vde_nostd::format::FORMAT_VERSION;
use vde_nostd::Structure;

/// The core's error over a file device.
pub type CoreError = vde_nostd::Error<io::Error>;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a file-backed volume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image file could not be opened or created.
    #[error("{}: {}", path.display(), io_message(source))]
    Open {
        /// The image path.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another process holds the image's lock.
    #[error("image is in use by another process")]
    Locked,
    /// `create` without `force` on a path that exists.
    #[error("{}: already exists", .0.display())]
    Exists(PathBuf),
    /// No superblock copy carries the vde magic.
    #[error("not a vde image")]
    NotAnImage,
    /// The image was written by a format version this build does not read.
    #[error("unsupported format version {found} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// Version found in the superblock.
        found: u32,
    },
    /// The file is shorter than the geometry its superblock describes.
    #[error(
        "truncated image: the superblock describes {expected} bytes but the file holds {actual}"
    )]
    Truncated {
        /// Bytes the superblock describes.
        expected: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// The requested geometry cannot hold a volume.
    #[error("invalid geometry: {0}")]
    Geometry(String),
    /// An I/O error on an open image.
    #[error("I/O error: {}", io_message(.0))]
    Io(#[from] io::Error),
    /// Any other error of the core engine.
    #[error("{}", engine_message(.0))]
    Engine(CoreError),
    /// The [`crate::SharedVolume`] was closed (or its worker stopped).
    #[error("the volume is closed")]
    Closed,
}

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        match e {
            vde_nostd::Error::Device(io) => Error::Io(io),
            vde_nostd::Error::NotFormatted => Error::NotAnImage,
            vde_nostd::Error::UnsupportedVersion { found } => Error::UnsupportedVersion { found },
            other => Error::Engine(other),
        }
    }
}

/// A mount's or a format's error, as the core's umbrella error is.
impl From<vde_nostd::MountError<io::Error>> for Error {
    fn from(e: vde_nostd::MountError<io::Error>) -> Self {
        CoreError::from(e).into()
    }
}

impl Error {
    /// The core error, if this is one.
    pub fn engine(&self) -> Option<&CoreError> {
        match self {
            Error::Engine(e) => Some(e),
            _ => None,
        }
    }
}

/// A short human name for an on-disk structure.
pub fn structure_name(s: Structure) -> &'static str {
    match s {
        Structure::Superblock => "superblock (both copies damaged or inconsistent)",
        Structure::WalHeader => "WAL header (both copies damaged)",
        Structure::WalRecord => "WAL record",
        Structure::Bitmap => "allocation bitmap",
        Structure::RegionDirectory => "region directory",
        Structure::RegionPointerTable => "region pointer table",
        Structure::SlotIndex => "slot index",
        Structure::Extent => "object extent header",
        Structure::Names => "name table",
        _ => "on-disk structure",
    }
}

/// One line describing a core error.
pub fn engine_message(e: &CoreError) -> String {
    use vde_nostd::Error as E;
    match e {
        E::Device(io) => format!("I/O error: {}", io_message(io)),
        E::BufferTooSmall { need } => format!("buffer too small: {need} bytes needed"),
        E::InvalidGeometry => "invalid geometry: the superblock does not match the image".into(),
        E::NotFormatted => "not a vde image".into(),
        E::UnsupportedVersion { found } => {
            format!(
                "unsupported format version {found} (this build reads version {FORMAT_VERSION})"
            )
        }
        E::Corrupt(s) => format!("corrupt metadata: {}", structure_name(*s)),
        E::TxCapacity => "transaction too large for the transaction buffer".into(),
        E::TxTooLarge => "transaction larger than the write-ahead log".into(),
        E::OutOfRange => "block address out of range".into(),
        E::NoSpace => "image full: not enough free space".into(),
        E::UnknownModule => "unknown module".into(),
        E::ModuleAlreadyPresent => "module already present".into(),
        E::DirectoryFull => "the region directory is full".into(),
        E::ObjectTooLarge => "object too large".into(),
        E::ModuleMissing => {
            "the image lacks the module this needs ('objects', or 'names' for named objects)".into()
        }
        E::IndexFull => "image full: the slot index has no room for another shared block".into(),
        E::BadHandle { handle } => {
            format!("bad handle {handle:016x}: no such object (stale, deleted or never written)")
        }
        E::ObjectChecksum { handle } => {
            format!("object {handle:016x} is damaged: checksum mismatch")
        }
        E::HandleSyntax => "malformed handle: expected 16 hexadecimal digits".into(),
        E::BatchAborted => "batch rolled back after an earlier error".into(),
        E::KeyInvalid => "a name must be 1 to 64 bytes".into(),
        E::NameNotFound => "no object has that name".into(),
        E::NamesFull => "the name table is full (its region has no room for another leaf)".into(),
        E::NotCompiled => "this build leaves out the code this needs (a cargo feature)".into(),
        _ => format!("{e}"),
    }
}

/// An I/O error as a short lower-case phrase, without the "(os error N)" suffix.
pub fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::AlreadyExists => "already exists".into(),
        io::ErrorKind::IsADirectory => "is a directory".into(),
        io::ErrorKind::UnexpectedEof => "unexpected end of file".into(),
        io::ErrorKind::StorageFull => "no space left on the host file system".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s.get(..i).unwrap_or(&s).to_string(),
                None => s,
            }
        }
    }
}
