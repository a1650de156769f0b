//! proptest: without faults, every strategy copies exactly what
//! `ptr::copy_nonoverlapping` copies, and nothing outside `dst..dst+len`.

mod common;

use common::*;
use mcsafe::Strategy;
use proptest::prelude::*;

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    proptest::sample::select(Strategy::available())
}

fn length() -> impl proptest::strategy::Strategy<Value = usize> {
    prop_oneof![0usize..=300, 0usize..=20_000, 0usize..=(1 << 20)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn copies_like_copy_nonoverlapping(
        strategy in strategy(),
        len in length(),
        src_misalign in 0usize..64,
        dst_misalign in 0usize..64,
        seed in any::<u64>(),
    ) {
        let mut src = Guarded::new(len);
        let mut dst = Guarded::new(len);
        let mut expected = Guarded::new(len);
        let (s, d, e) = (src.at(src_misalign), dst.at(dst_misalign), expected.at(dst_misalign));
        // SAFETY: three distinct buffers with room for len bytes and their guards.
        unsafe {
            fill(s, len, seed);
            std::ptr::copy_nonoverlapping(s, e, len);
            prop_assert_eq!(mcsafe::copy_mc_with(strategy, d, s, len), Ok(()));
            prop_assert_eq!(first_difference(d, e, len), None);
            assert_untouched(d.sub(GUARD), GUARD, "before dst");
            assert_untouched(d.add(len), GUARD, "after dst");
        }
    }
}
