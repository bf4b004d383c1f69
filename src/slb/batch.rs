//! Splitting write calls into SLB-sized batches.

/// The SLB's limit of backends per write call.
pub const DEFAULT_BATCH_SIZE: usize = 20;

/// Splits `items` into consecutive batches of at most `size` (a size of 0 counts as 1),
/// in the order given: callers pass backends sorted, so the calls a plan makes are the
/// same on every run, and a failure part-way leaves a predictable prefix applied.
pub fn batches<T>(items: &[T], size: usize) -> std::slice::Chunks<'_, T> {
    items.chunks(size.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_five_items_make_twenty_twenty_five_in_order() {
        let items: Vec<u32> = (0..45).collect();
        let got: Vec<&[u32]> = batches(&items, 20).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], &items[0..20]);
        assert_eq!(got[1], &items[20..40]);
        assert_eq!(got[2], &items[40..45]);
    }

    #[test]
    fn empty_input_makes_no_call_and_zero_size_is_one() {
        assert_eq!(batches::<u8>(&[], 20).count(), 0);
        assert_eq!(batches(&[1, 2, 3], 0).count(), 3);
    }
}
