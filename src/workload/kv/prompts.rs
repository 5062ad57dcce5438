//! The prompt lengths of draft §10.1 ("TTFT Under Varying Prompt
//! Lengths"): the sweep a KV-transfer test runs when the user gives none.

/// The draft's §10.1 prompt lengths, tokens: 128 to 16384 in powers of two.
pub fn default_prompts() -> Vec<u64> {
    vec![128, 256, 512, 1024, 2048, 4096, 8192, 16384]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_section_10_1() {
        let prompts = default_prompts();
        assert_eq!(prompts.len(), 8);
        assert_eq!(prompts[0], 128);
        assert!(prompts.windows(2).all(|w| w[1] == 2 * w[0]));
        assert_eq!(*prompts.last().unwrap(), 16384);
    }
}
