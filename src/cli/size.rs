//! Parsing of sizes ("64K", "1M", "1G", "4096") and lists/ranges of them
//! ("64K,1M", "4K..1G" doubling, "4K..1G:x4").

/// Parses one size: a number with an optional K/M/G/T suffix (powers of
/// 1024; "KiB", "KB" and "k" are accepted and mean the same).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "'{text}' is not a size; write e.g. 4096, 64K, 1M or 1G"
        ));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is too large"))?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}'; use K, M, G or T (powers of 1024)"
            ))
        }
    };
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses a comma-separated list whose items are sizes or ranges `A..B`
/// (doubling) / `A..B:xF` (times F).
pub fn parse_size_list(text: &str) -> Result<Vec<u64>, String> {
    let mut sizes = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((from, rest)) = item.split_once("..") {
            let (to, factor) = match rest.split_once(":x") {
                Some((to, f)) => (
                    to,
                    f.parse::<u64>()
                        .map_err(|_| format!("bad range step in '{item}'; write e.g. 4K..1G:x4"))?,
                ),
                None => (rest, 2),
            };
            let (from, to) = (parse_size(from)?, parse_size(to)?);
            if from == 0 || factor < 2 || from > to {
                return Err(format!(
                    "bad range '{item}': need 0 < start <= end and a step of at least x2"
                ));
            }
            let mut size = from;
            while size <= to {
                sizes.push(size);
                size = match size.checked_mul(factor) {
                    Some(next) => next,
                    None => break,
                };
            }
        } else {
            sizes.push(parse_size(item)?);
        }
    }
    if sizes.is_empty() {
        return Err("no size given".into());
    }
    Ok(sizes)
}

/// Parses a comma-separated list of counts, with ranges `A..B` doubling.
pub fn parse_count_list(text: &str) -> Result<Vec<u32>, String> {
    parse_size_list(text)?
        .into_iter()
        .map(|v| u32::try_from(v).map_err(|_| format!("{v} is too large a count")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert!(parse_size("abc").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse_size_list("64K,1M").unwrap(), vec![65536, 1 << 20]);
        assert_eq!(
            parse_size_list("1K..8K").unwrap(),
            vec![1024, 2048, 4096, 8192]
        );
        assert_eq!(parse_size_list("64K..1G:x4").unwrap().len(), 8);
        assert!(parse_size_list("8K..1K").is_err());
        assert_eq!(parse_count_list("1,4,8").unwrap(), vec![1, 4, 8]);
    }
}
