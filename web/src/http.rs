//! HTTP range requests: the `Range` header a read sends and the `Content-Range` header of the
//! answer (RFC 9110, section 14). Pure functions, tested natively.

use std::ops::Range;

/// The `Range` header value asking for bytes `range` (end exclusive; must not be empty).
pub fn range_header(range: &Range<u64>) -> String {
    debug_assert!(range.start < range.end);
    format!("bytes={}-{}", range.start, range.end - 1)
}

/// What a `206 Partial Content` answer says it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte sent.
    pub start: u64,
    /// One past the last byte sent.
    pub end: u64,
    /// Length of the whole resource.
    pub total: u64,
}

/// Parses a `Content-Range` value of the form `bytes FIRST-LAST/TOTAL`. `None` for anything
/// else, including an unknown total (`*`) and unsatisfied ranges (`bytes */TOTAL`).
pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (start, last, total) = (number(first)?, number(last)?, number(total)?);
    if last < start || last >= total {
        return None;
    }
    Some(ContentRange {
        start,
        end: last + 1,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_is_inclusive() {
        assert_eq!(range_header(&(0..65536)), "bytes=0-65535");
        assert_eq!(range_header(&(10..11)), "bytes=10-10");
    }

    #[test]
    fn content_range_parses_and_rejects() {
        assert_eq!(
            parse_content_range("bytes 0-65535/3852552"),
            Some(ContentRange {
                start: 0,
                end: 65536,
                total: 3852552
            })
        );
        assert_eq!(
            parse_content_range(" bytes  5-5/6 "),
            Some(ContentRange {
                start: 5,
                end: 6,
                total: 6
            })
        );
        for bad in [
            "bytes 0-9/*",
            "bytes */100",
            "bytes 9-0/100",
            "bytes 0-100/100",
            "items 0-1/2",
            "bytes 0-1",
            "bytes -1-2/3",
            "bytes 0-+1/3",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
