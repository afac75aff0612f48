//! Superblock selection: of the two copies, the newest valid one consistent with the device, and
//! the repair of a damaged or older copy before recovery may rewrite the superblock (so the log
//! never overwrites the only valid copy).

use super::*;

/// Reads both superblock copies and returns the newest one that is valid and consistent with
/// the device, with its layout.
#[inline(never)]
#[bisync]
pub(super) async fn pick_superblock<D: BlockDevice>(
    dev: &mut D,
    scratch: &mut [u8],
) -> Result<(Superblock, Layout), Error<D::Error>> {
    let bs = dev.block_size();
    let a = block_of(scratch, bs)?;
    let mut best: Option<(Superblock, Layout)> = None;
    let mut first_err: Option<Error<D::Error>> = None;
    // One copy decoded at a time: a mount's stack holds one superblock besides the best.
    for b in [SB_PRIMARY, SB_MIRROR] {
        dev.read_block(b, a).await.map_err(Error::Device)?;
        match Superblock::decode(a)
            .map_err(map_decode)
            .and_then(|sb| validate_sb(&sb, dev).map(|l| (sb, l)))
        {
            Ok((sb, l)) => {
                if verifier::superblock_newer(&sb, best.as_ref().map(|(x, _)| x)) {
                    best = Some((sb, l));
                }
            }
            Err(e) => {
                if first_err.is_none() || !matches!(e, Error::NotFormatted) {
                    first_err = Some(e);
                }
            }
        }
    }
    match (best, first_err) {
        (Some(x), _) => Ok(x),
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::NotFormatted),
    }
}

/// If exactly one superblock copy is valid, rewrites the other from it and flushes, so that a
/// replay that rewrites the primary and then the mirror always has one whole copy behind it.
#[bisync]
pub(super) async fn repair_superblock_copy<D: BlockDevice>(
    dev: &mut D,
    scratch: &mut [u8],
) -> Result<(), Error<D::Error>> {
    let bs = dev.block_size();
    let a = block_of(scratch, bs)?;
    dev.read_block(SB_PRIMARY, a).await.map_err(Error::Device)?;
    let ok_a = Superblock::decode(a).is_ok_and(|sb| validate_sb(&sb, dev).is_ok());
    dev.read_block(SB_MIRROR, a).await.map_err(Error::Device)?;
    let ok_b = Superblock::decode(a).is_ok_and(|sb| validate_sb(&sb, dev).is_ok());
    // `a` holds the mirror.
    match (ok_a, ok_b) {
        (true, false) => {
            dev.read_block(SB_PRIMARY, a).await.map_err(Error::Device)?;
            dev.write_block(SB_MIRROR, a).await.map_err(Error::Device)?
        }
        (false, true) => dev
            .write_block(SB_PRIMARY, a)
            .await
            .map_err(Error::Device)?,
        _ => return Ok(()),
    }
    dev.flush().await.map_err(Error::Device)?;
    Ok(())
}

pub(super) fn map_decode<E>(e: DecodeError) -> Error<E> {
    match e {
        DecodeError::BadMagic => Error::NotFormatted,
        DecodeError::BadVersion(found) => Error::UnsupportedVersion { found },
        _ => Error::Corrupt(Structure::Superblock),
    }
}

pub(super) fn validate_sb<D: BlockDevice>(
    sb: &Superblock,
    dev: &D,
) -> Result<Layout, Error<D::Error>> {
    // A copy with the formatting flag is valid here: the mount reads it as not formatted.
    let mut first = verifier::First::default();
    let layout = verifier::superblock(
        sb,
        dev.block_size(),
        dev.block_count(),
        true,
        &mut first.sink(),
    );
    layout.ok_or(match first.0 {
        Some(verifier::Finding::SuperblockGeometry { .. }) => Error::InvalidGeometry,
        f => Error::Corrupt(f.map_or(Structure::Superblock, |f| f.structure())),
    })
}
