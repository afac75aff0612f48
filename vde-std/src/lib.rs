//! std adapter (in progress).
