//! CPU hints for the hot path.

/// Asks the CPU to start loading the cache line holding `r` into L1, so a later access does not stall on it.
/// A no-op where the target has no prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is only a hint (it never faults, whatever the address) and SSE, the feature it
    // needs, is part of the x86_64 baseline; `r` is a valid reference besides.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(r as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
