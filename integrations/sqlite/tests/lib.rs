//! Nothing: the package is its tests (tests/) and C programs (c/).
