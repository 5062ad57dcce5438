//! Slurm host lists (`gpu[07-10,12],login1`): only the first host is
//! needed, as the rendezvous host of node 0.

/// The first host of a Slurm node list, or None when the list is empty or
/// malformed.
pub fn first_host(list: &str) -> Option<String> {
    let list = list.trim();
    // the first entry ends at the first ',' outside brackets
    let mut depth = 0usize;
    let mut end = list.len();
    for (i, ch) in list.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let entry = &list[..end];
    if entry.is_empty() {
        return None;
    }
    match entry.split_once('[') {
        None => Some(entry.to_string()),
        Some((prefix, rest)) => {
            let (inside, suffix) = rest.split_once(']')?;
            let first = inside.split(',').next()?.split('-').next()?.trim();
            if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Some(format!("{prefix}{first}{suffix}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_hosts() {
        assert_eq!(first_host("node1").as_deref(), Some("node1"));
        assert_eq!(first_host("node1,node2").as_deref(), Some("node1"));
        assert_eq!(first_host("gpu[007-010,12]").as_deref(), Some("gpu007"));
        assert_eq!(first_host("a[3,5],b[1-2]").as_deref(), Some("a3"));
        assert_eq!(first_host("r[1-2]-ib").as_deref(), Some("r1-ib"));
        assert_eq!(first_host(""), None);
        assert_eq!(first_host("bad[x-y]"), None);
    }
}
