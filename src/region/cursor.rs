//! [`RegionCursor`]: a position in a region, with `Read`, `Write` and `Seek`.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::MappedRegion;

/// A position in a [`MappedRegion`], with [`Read`], [`Write`] and [`Seek`].
///
/// Reads and writes go through [`MappedRegion::read_at`] and
/// [`MappedRegion::write_at`] at the position and advance it by what they moved:
/// a lost granule gives a short count, then an error on the next call. At or
/// past the end, reads return 0 (end of file) and writes return 0 (so
/// `write_all` fails with `WriteZero`): the region does not grow. Seeking past
/// the end is allowed, as for files; before the start is `InvalidInput`.
#[derive(Debug)]
pub struct RegionCursor<'a> {
    region: &'a MappedRegion,
    pos: u64,
}

impl<'a> RegionCursor<'a> {
    pub(super) fn new(region: &'a MappedRegion) -> RegionCursor<'a> {
        RegionCursor { region, pos: 0 }
    }

    /// The position, from the region's start.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to `pos`, from the region's start.
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos;
    }

    /// The region.
    pub fn region(&self) -> &MappedRegion {
        self.region
    }
}

impl Read for RegionCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.region.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for RegionCursor<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.region.write_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Nothing to do: writes go straight to the mapping. For durability, call
    /// [`MappedRegion::flush`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for RegionCursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => (self.region.len() as u64).checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("mcsafe: seek to {to:?} lands before the start of the region"),
            )
        })?;
        Ok(self.pos)
    }
}
