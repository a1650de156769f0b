//! One module per target. Only x86-64 Linux has fault-safe copies; elsewhere
//! `unprotected` keeps the API and copies plainly (see the crate docs).

#[cfg(mcsafe_protected)]
mod x86_64;
#[cfg(mcsafe_protected)]
pub use x86_64::Thresholds;
#[cfg(mcsafe_protected)]
pub(crate) use x86_64::*;

#[cfg(not(mcsafe_protected))]
mod unprotected;
#[cfg(not(mcsafe_protected))]
pub use unprotected::Thresholds;
#[cfg(not(mcsafe_protected))]
pub(crate) use unprotected::*;
