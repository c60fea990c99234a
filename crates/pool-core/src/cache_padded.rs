//! A value alone on its cache lines.

/// Keeps what it holds on cache lines of its own: 128 bytes, since adjacent-line
/// prefetchers pull lines in pairs. Data that one core writes often goes in one, so
/// another core reading its neighbours does not stall on it.
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct CachePadded<T>(pub(crate) T);

#[cfg(test)]
mod tests {
    use super::CachePadded;

    #[test]
    fn a_padded_value_fills_whole_line_pairs() {
        assert_eq!(std::mem::align_of::<CachePadded<u64>>(), 128);
        assert_eq!(std::mem::size_of::<CachePadded<u64>>(), 128);
    }
}
